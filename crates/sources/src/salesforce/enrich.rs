//! A Salesforce Outbound Message notification in, the flat `salesforce-crm`
//! event out.
//!
//! A notification already carries the record's latest values for every field
//! the message definition selected, so the event is the notification's
//! fields (`sobject_<Field>`, Salesforce's API names verbatim, nil as null)
//! with the org, the notification and the time to order by. Contacts and
//! leads keep only their relations and times: their names, emails, phones
//! and addresses are personal data and are not passed on.
//!
//! With the org's REST API configured, the event also gets:
//! - the fields a dashboard needs that the message did not select, read
//!   from the opportunity; when that read is of a newer version than the
//!   message, the event carries the newer version whole;
//! - its stage's definition (`stage_sort_order`, `stage_default_probability`,
//!   `stage_is_won`, `stage_is_closed`, ...), which no message carries;
//! - its owner's name (`owner_name`, `owner_is_active`).
//!
//! A lookup that fails makes the event `partial`; a record the org no
//! longer has (deleted since) leaves the event as the message had it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tributary_enrichment::flatten::FlatRecord;
use tributary_enrichment::oauth::TokenStore;
use tributary_envelope::RawEvent;

use super::api::{OrgApi, StageDefinition, parse_datetime, soap_text};
use super::outbound::read_notification_bytes;
use super::{NAME, SalesforceTenant, tenant_settings};
use crate::enrich::{Missing, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError,
    SourceEnricher,
};

/// The fields of a contact or lead that are passed on; the rest may be
/// personal data.
const PERSON_FIELDS: &[&str] = &[
    "Id",
    "AccountId",
    "OwnerId",
    "IsDeleted",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "LeadSource",
    "Status",
    "IsConverted",
    "ConvertedAccountId",
    "ConvertedContactId",
    "ConvertedOpportunityId",
];

/// The opportunity fields the dashboards read: a message that lacks any of
/// them has the opportunity read through the API. (`CurrencyIsoCode` exists
/// only in multi-currency orgs, which select it in their messages.)
pub const OPPORTUNITY_FIELDS: &[&str] = &[
    "Id",
    "Name",
    "Amount",
    "StageName",
    "IsWon",
    "IsClosed",
    "IsDeleted",
    "Probability",
    "CloseDate",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "OwnerId",
    "AccountId",
    "LeadSource",
];

pub struct SalesforceEnricher {
    tenants: BTreeMap<String, SalesforceTenant>,
    /// The REST API of every org that configures it, by tenant.
    apis: BTreeMap<String, Arc<OrgApi>>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    let refusal = |tenant: &str, reason: String| SourceConfigError::Tenant {
        tenant: tenant.to_owned(),
        source_name: NAME,
        reason,
    };
    let mut store = None;
    if let Some((tenant, _)) = tenants.iter().find(|(_, t)| t.oauth.is_some()) {
        store = TokenStore::open(&context.settings.token_store)
            .map_err(|err| refusal(tenant, err.to_string()))?
            .map(Arc::new);
    }
    let mut apis = BTreeMap::new();
    for (tenant, settings) in &tenants {
        let api = OrgApi::for_tenant(
            tenant,
            settings,
            context.settings,
            context.http.clone(),
            store.clone(),
        )
        .map_err(|reason| refusal(tenant, reason))?;
        if let Some(api) = api {
            apis.insert(tenant.clone(), Arc::new(api));
        }
    }
    Ok(Box::new(SalesforceEnricher { tenants, apis }))
}

impl SourceEnricher for SalesforceEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let mut record = self.message_fields(raw)?;
            let mut missing = Missing::default();
            if let Some(api) = self.apis.get(&raw.tenant) {
                add_from_api(api, &mut record, &mut missing).await;
            }
            put_pipeline_fields(&mut record, raw, &missing);
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async {
            let mut checks = Vec::new();
            for (tenant, api) in &self.apis {
                let outcome = api.stages().await.map(|stages| {
                    format!(
                        "the token is accepted; {} opportunity stages listed",
                        stages.len()
                    )
                });
                checks.push(AccessCheck {
                    tenant: tenant.clone(),
                    outcome,
                });
            }
            checks
        })
    }
}

impl SalesforceEnricher {
    /// Without the REST API: events carry what the messages carry.
    pub fn new(tenants: BTreeMap<String, SalesforceTenant>) -> Self {
        SalesforceEnricher {
            tenants,
            apis: BTreeMap::new(),
        }
    }

    /// The flat event of a raw notification, from the message alone.
    pub fn flat_event(&self, raw: &RawEvent) -> Result<FlatRecord, EnrichFailure> {
        let mut record = self.message_fields(raw)?;
        put_pipeline_fields(&mut record, raw, &Missing::default());
        Ok(record)
    }

    /// The event's fields from the notification: everything but the
    /// pipeline's own.
    fn message_fields(&self, raw: &RawEvent) -> Result<FlatRecord, EnrichFailure> {
        let notification = read_notification_bytes(&raw.body)
            .map_err(|err| EnrichFailure::unreadable_body(format!("not a notification: {err}")))?;
        let settings = self.tenants.get(&raw.tenant).ok_or_else(|| {
            EnrichFailure::unreadable_body(format!(
                "tenant {:?} has no [tenants.{}.salesforce] section",
                raw.tenant, raw.tenant
            ))
        })?;
        let keys = raw.keys.clone().unwrap_or_default();
        let object = notification
            .object_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                EnrichFailure::unreadable_body("the notification has no sObject type")
            })?;
        let mut record = FlatRecord::new();
        record.put("event_object", object.as_str());
        record.put("event_action", keys.action.as_str());
        record.put("event_object_id", keys.object_id.as_str());
        record.put("event_organization_id", settings.organization_id.as_str());
        record.put(
            "event_notification_id",
            notification.id.clone().unwrap_or_default(),
        );
        // Salesforce's own time when the message carries it, else the receipt.
        let at = if keys.occurred_at_micros > 0 {
            keys.occurred_at_micros
        } else {
            raw.received_at_micros
        };
        record.put("event_timestamp_micro", at);
        if let Some(currency) = &settings.currency {
            record.put("event_default_currency", currency.as_str());
        }
        let personal = matches!(object.as_str(), "contact" | "lead");
        for (field, value) in &notification.fields {
            if personal && !PERSON_FIELDS.contains(&field.as_str()) {
                continue;
            }
            record.put(format!("sobject_{field}"), value.clone());
        }
        Ok(record)
    }
}

/// The record's text field `sobject_<name>`, when it has a value.
fn sobject_text<'a>(record: &'a FlatRecord, name: &str) -> Option<&'a str> {
    record
        .get(&format!("sobject_{name}"))
        .and_then(serde_json::Value::as_str)
}

/// What the org's API adds to an event (see the module's description).
async fn add_from_api(api: &OrgApi, record: &mut FlatRecord, missing: &mut Missing) {
    let object = record
        .get("event_object")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if object == "opportunity" {
        let lacks_fields = OPPORTUNITY_FIELDS
            .iter()
            .any(|field| !record.contains(&format!("sobject_{field}")));
        if lacks_fields && let Some(id) = sobject_text(record, "Id").map(str::to_owned) {
            let read = api.record("Opportunity", &id, OPPORTUNITY_FIELDS).await;
            if let Some(Some(current)) = missing.note("opportunity", read) {
                merge_read(record, &current);
            }
        }
        if let Some(stage) = sobject_text(record, "StageName").map(str::to_owned)
            && let Some(stages) = missing.note("opportunity_stages", api.stages().await)
            && let Some(definition) = find_stage(&stages, &stage)
        {
            put_stage(record, definition);
        }
    }
    if let Some(owner_id) = sobject_text(record, "OwnerId").map(str::to_owned)
        // Users' ids start 005; a lead's owner may be a queue (00G).
        && owner_id.starts_with("005")
        && let Some(Some(owner)) = missing.note("owner", api.owner(&owner_id).await)
    {
        if let Some(name) = owner.name {
            record.put("owner_name", name);
        }
        if let Some(active) = owner.active {
            record.put("owner_is_active", active);
        }
    }
}

/// Puts a REST read of the record into the event. A read of a newer
/// version replaces the message's fields and version (the event carries
/// that newer version whole); a read of the same version fills in the
/// fields the message lacks; an older read (a replica behind) adds nothing.
fn merge_read(record: &mut FlatRecord, current: &serde_json::Value) {
    let Some(fields) = current.as_object() else {
        return;
    };
    // Compare like with like: the field the message's version came from.
    let clock = ["LastModifiedDate", "SystemModstamp"]
        .into_iter()
        .find(|field| sobject_text(record, field).is_some());
    let time_of = |text: Option<&str>| text.and_then(parse_datetime).map(|t| t.timestamp_micros());
    let (message_at, read_at) = match clock {
        Some(field) => (
            time_of(sobject_text(record, field)),
            time_of(fields.get(field).and_then(serde_json::Value::as_str)),
        ),
        None => (None, None),
    };
    let newer = match (message_at, read_at) {
        (Some(message), Some(read)) if read < message => return,
        (Some(message), Some(read)) => read > message,
        // Nothing to compare: only fill in.
        _ => false,
    };
    for (field, value) in fields {
        if field == "attributes" {
            continue;
        }
        let key = format!("sobject_{field}");
        if newer || !record.contains(&key) {
            record.remove(&key);
            record.put(key, soap_text(value));
        }
    }
    if newer && let Some(read_at) = read_at {
        record.remove("event_timestamp_micro");
        record.put("event_timestamp_micro", read_at);
    }
}

/// A stage by its API name (what `StageName` holds), else by its label.
fn find_stage<'a>(stages: &'a [StageDefinition], name: &str) -> Option<&'a StageDefinition> {
    stages
        .iter()
        .find(|stage| stage.api_name == name)
        .or_else(|| stages.iter().find(|stage| stage.label == name))
}

fn put_stage(record: &mut FlatRecord, stage: &StageDefinition) {
    record.put("stage_label", stage.label.as_str());
    record.put("stage_sort_order", stage.sort_order);
    record.put("stage_default_probability", stage.default_probability);
    record.put("stage_is_won", stage.is_won);
    record.put("stage_is_closed", stage.is_closed);
    record.put("stage_is_active", stage.is_active);
}

#[cfg(test)]
mod tests;
