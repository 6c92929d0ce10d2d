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
//! - its owner's name (`owner_name`, `owner_is_active`);
//! - an opportunity's account, as its company (`account_<Field>`).
//!
//! A lookup that fails makes the event `partial`; a record the org no
//! longer has (deleted since) leaves the event as the message had it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::api::{OrgApi, StageDefinition, parse_datetime, soap_text};
use super::cdc::PAYLOAD_VERSION_CDC;
use super::outbound::read_notification_bytes;
use super::{NAME, SalesforceTenant, tenant_settings};
use crate::enrich::{Missing, api_clients, check_each, put_pipeline_fields};
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

/// What an opportunity is read with: the fields the dashboards read and,
/// from API version 52 (where it appeared), `LastStageChangeDate`, which
/// says when it entered its stage.
fn opportunity_read_fields(api: &OrgApi) -> Vec<&'static str> {
    let mut fields = OPPORTUNITY_FIELDS.to_vec();
    if api.version_at_least(52) {
        fields.push("LastStageChangeDate");
    }
    fields
}

pub struct SalesforceEnricher {
    tenants: BTreeMap<String, SalesforceTenant>,
    /// The REST API of every org that configures it, by tenant.
    apis: BTreeMap<String, Arc<OrgApi>>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    let apis = api_clients(
        NAME,
        &tenants,
        context,
        |settings| settings.oauth.is_some(),
        |tenant, settings, store| {
            let api = OrgApi::for_tenant(
                tenant,
                settings,
                context.settings,
                context.http.clone(),
                store,
            )?;
            Ok(api.map(Arc::new))
        },
    )?;
    Ok(Box::new(SalesforceEnricher { tenants, apis }))
}

impl SourceEnricher for SalesforceEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let mut record = self.message_fields(raw)?;
            let mut missing = Missing::default();
            match self.apis.get(&raw.tenant) {
                Some(api) => add_from_api(api, &mut record, &mut missing).await,
                None if raw
                    .keys
                    .as_ref()
                    .is_some_and(|k| k.action.starts_with("gap_")) =>
                {
                    missing.note::<()>(
                        "record",
                        Err(ApiError::NotConfigured {
                            api: "salesforce",
                            reason: "a gap event is re-read through the REST API: set instance_url with access_token or [oauth]".into(),
                        }),
                    );
                }
                None => {}
            }
            put_pipeline_fields(&mut record, raw, &missing);
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(check_each(&self.apis, |api| async move {
            let stages = api.stages().await?;
            Ok(format!(
                "the token is accepted; {} opportunity stages listed",
                stages.len()
            ))
        }))
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
        let settings = self.tenants.get(&raw.tenant).ok_or_else(|| {
            EnrichFailure::unreadable_body(format!(
                "tenant {:?} has no [tenants.{}.salesforce] section",
                raw.tenant, raw.tenant
            ))
        })?;
        let keys = raw.keys.clone().unwrap_or_default();
        let (object, notification_id, fields) = if keys.payload_version == PAYLOAD_VERSION_CDC {
            change_event_fields(raw, &keys)?
        } else {
            let notification = read_notification_bytes(&raw.body).map_err(|err| {
                EnrichFailure::unreadable_body(format!("not a notification: {err}"))
            })?;
            let object = notification
                .object_type
                .as_deref()
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| {
                    EnrichFailure::unreadable_body("the notification has no sObject type")
                })?;
            (
                object,
                notification.id.clone().unwrap_or_default(),
                notification.fields,
            )
        };
        let mut record = FlatRecord::new();
        if keys.payload_version == PAYLOAD_VERSION_CDC {
            record.put("event_change_event", true);
        }
        record.put("event_object", object.as_str());
        record.put("event_action", keys.action.as_str());
        record.put("event_object_id", keys.object_id.as_str());
        record.put("event_organization_id", settings.organization_id.as_str());
        record.put("event_notification_id", notification_id);
        // Salesforce's own time when the event carries it, else the receipt.
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
        // A task's or event's description is free text about people.
        let activity = matches!(object.as_str(), "task" | "event");
        for (field, value) in &fields {
            if personal && !PERSON_FIELDS.contains(&field.as_str()) {
                continue;
            }
            if activity && field == "Description" {
                continue;
            }
            record.put(format!("sobject_{field}"), value.clone());
        }
        Ok(record)
    }
}

/// An event's object, its id at Salesforce, and its fields (nil as `None`).
type EventFields = (String, String, Vec<(String, Option<String>)>);

/// A change event's object, event id and fields (as an Outbound Message
/// would send them: text, nulls as `None`). A deletion or undeletion says
/// so in `IsDeleted`; an event that could not be decoded, or a gap too
/// large to name its records, cannot be enriched and says why.
fn change_event_fields(
    raw: &RawEvent,
    keys: &tributary_envelope::EventKeys,
) -> Result<EventFields, EnrichFailure> {
    let body: serde_json::Value = serde_json::from_slice(&raw.body)
        .map_err(|err| EnrichFailure::unreadable_body(format!("not a change event: {err}")))?;
    let uuid = body["event_uuid"].as_str().unwrap_or_default().to_owned();
    if let Some(reason) = body.get("undecodable") {
        return Err(EnrichFailure::unreadable_body(format!(
            "change event {uuid} on {} could not be decoded: {reason}",
            body["channel"]
        )));
    }
    if keys.action == "gap_overflow" {
        return Err(EnrichFailure::unreadable_body(format!(
            "gap_overflow on {}: Salesforce sent no changes one by one (over 100,000 records changed in one transaction, committed at {} ms); re-read the {} records changed then, then drop or redrive this event",
            body["channel"], body["header"]["commitTimestamp"], body["header"]["entityName"]
        )));
    }
    let mut fields: Vec<(String, Option<String>)> = body["fields"]
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(name, value)| (name.clone(), change_event_text(name, value)))
                .collect()
        })
        .unwrap_or_default();
    match keys.action.as_str() {
        "delete" => fields.push(("IsDeleted".into(), Some("true".into()))),
        "undelete" => fields.push(("IsDeleted".into(), Some("false".into()))),
        _ => {}
    }
    Ok((keys.object.clone(), uuid, fields))
}

/// A change event's value as Outbound Message text. Over the Pub/Sub API a
/// date field is days since the epoch and a date-time field milliseconds
/// since it: fields named as dates (`CloseDate`, `CreatedDate`,
/// `SystemModstamp`, `Renewal_Date__c`...) are written as `YYYY-MM-DD` or
/// RFC 3339 accordingly.
pub fn change_event_text(field: &str, value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let base = field.trim_end_matches("__c").trim_end_matches('_');
    let dated = base.ends_with("Date") || base.ends_with("Modstamp");
    match value {
        Value::Null => None,
        Value::Number(n) if dated && n.is_i64() => {
            let n = n.as_i64().unwrap_or_default();
            if n.abs() < 1_000_000 {
                chrono::DateTime::from_timestamp(n * 86_400, 0)
                    .map(|t| t.format("%Y-%m-%d").to_string())
            } else {
                chrono::DateTime::from_timestamp_millis(n)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
        }
        Value::String(s) => Some(s.clone()),
        other => soap_text(other),
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
    let action = record
        .get("event_action")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if action.starts_with("gap_") {
        reread_after_gap(api, &object, record, missing).await;
    }
    if object == "opportunity" {
        // A change event says exactly what changed: nothing to fill in.
        let message = !record.contains("event_change_event");
        let lacks_fields = OPPORTUNITY_FIELDS
            .iter()
            .any(|field| !record.contains(&format!("sobject_{field}")));
        if message
            && lacks_fields
            && let Some(id) = sobject_text(record, "Id").map(str::to_owned)
        {
            let read = api
                .record("Opportunity", &id, &opportunity_read_fields(api))
                .await;
            if let Some(Some(current)) = missing.note("opportunity", read) {
                merge_read(record, &current);
            }
        }
        // A change event that closes an opportunity carries its CloseDate
        // only if that changed too: the won or lost date is read.
        let closes = record.contains("sobject_IsWon") || record.contains("sobject_IsClosed");
        if !message
            && closes
            && !record.contains("sobject_CloseDate")
            && let Some(id) = record
                .get("event_object_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        {
            let read = api.record("Opportunity", &id, &["CloseDate"]).await;
            if let Some(Some(current)) = missing.note("close_date", read) {
                record.put(
                    "sobject_CloseDate",
                    current.get("CloseDate").and_then(soap_text),
                );
            }
        }
        // The opportunity's account, as its company.
        if let Some(account_id) = sobject_text(record, "AccountId").map(str::to_owned)
            && let Some(Some(account)) = missing.note("account", api.account(&account_id).await)
        {
            for field in super::api::ACCOUNT_FIELDS {
                if let Some(value) = account.get(*field) {
                    record.put(format!("account_{field}"), soap_text(value));
                }
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

/// The fields a gap event's record is read again with, by object.
fn gap_fields(api: &OrgApi, object: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let (sobject, fields): (_, &[&str]) = match object {
        "opportunity" => return Some(("Opportunity", opportunity_read_fields(api))),
        "account" => (
            "Account",
            &[
                "Name",
                "Website",
                "OwnerId",
                "Industry",
                "NumberOfEmployees",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
            ],
        ),
        "contact" => (
            "Contact",
            &[
                "AccountId",
                "OwnerId",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
            ],
        ),
        "user" => ("User", &["Name", "Email", "IsActive", "LastModifiedDate"]),
        "task" => (
            "Task",
            &[
                "Subject",
                "Type",
                "TaskSubtype",
                "IsClosed",
                "CompletedDateTime",
                "ActivityDate",
                "WhatId",
                "WhoId",
                "AccountId",
                "OwnerId",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
            ],
        ),
        "event" => (
            "Event",
            &[
                "Subject",
                "Type",
                "EventSubtype",
                "StartDateTime",
                "WhatId",
                "WhoId",
                "AccountId",
                "OwnerId",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
            ],
        ),
        _ => return None,
    };
    Some((sobject, fields.to_vec()))
}

/// A gap event (`gap_create`, `gap_update`...) says a record changed but not
/// how: the record is read as it is now, and the event carries that, at its
/// `LastModifiedDate` when later than the gap. A record the org no longer
/// has is deleted.
async fn reread_after_gap(
    api: &OrgApi,
    object: &str,
    record: &mut FlatRecord,
    missing: &mut Missing,
) {
    let Some((sobject, fields)) = gap_fields(api, object) else {
        return;
    };
    let Some(id) = record
        .get("event_object_id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    match missing.note("record", api.record(sobject, &id, &fields).await) {
        Some(Some(current)) => {
            merge_read(record, &current);
            let modified = sobject_text(record, "LastModifiedDate")
                .and_then(parse_datetime)
                .map(|t| t.timestamp_micros());
            let at = record
                .get("event_timestamp_micro")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            if let Some(modified) = modified.filter(|m| *m > at) {
                record.remove("event_timestamp_micro");
                record.put("event_timestamp_micro", modified);
            }
        }
        Some(None) => {
            record.remove("sobject_IsDeleted");
            record.put("sobject_IsDeleted", "true");
        }
        None => {}
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
