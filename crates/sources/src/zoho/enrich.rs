//! A Zoho CRM notification's record in, the flat `zoho-crm` event out.
//!
//! The record's values are the notification's `affected_values` for its id
//! (a channel created with `return_affected_field_values`): the fields that
//! changed, new values only (`field_<API name>`; a lookup's id, with
//! `_name`). Records are not read from the CRM API here, so a notification
//! without values for a record that still exists gives a partial event
//! missing `record`. Contacts keep only their relations and times.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::{NAME, ZohoTenant, tenant_settings};
use crate::checks::id_text;
use crate::enrich::{Missing, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError, SourceEnricher,
};

const PERSON_FIELDS: &[&str] = &[
    "Account_Name",
    "Owner",
    "Created_Time",
    "Modified_Time",
    "Lead_Source",
];

pub struct ZohoEnricher {
    tenants: BTreeMap<String, ZohoTenant>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    Ok(Box::new(ZohoEnricher { tenants }))
}

impl SourceEnricher for ZohoEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let (record, missing) = self.flat_event(raw)?;
            Enriched::from_record(&record, missing)
        })
    }
}

impl ZohoEnricher {
    pub fn new(tenants: BTreeMap<String, ZohoTenant>) -> Self {
        ZohoEnricher { tenants }
    }

    pub fn flat_event(&self, raw: &RawEvent) -> Result<(FlatRecord, Missing), EnrichFailure> {
        let body: Map<String, Value> = serde_json::from_slice(&raw.body)
            .map_err(|err| EnrichFailure::unreadable_body(format!("not a notification: {err}")))?;
        let settings = self.tenants.get(&raw.tenant).ok_or_else(|| {
            EnrichFailure::unreadable_body(format!(
                "tenant {:?} has no [tenants.{}.zoho] section",
                raw.tenant, raw.tenant
            ))
        })?;
        let keys = raw.keys.clone().unwrap_or_default();
        let mut record = FlatRecord::new();
        record.put("event_object", keys.object.as_str());
        record.put("event_action", keys.action.as_str());
        record.put("event_object_id", keys.object_id.as_str());
        record.put("event_org_id", settings.org_id.as_str());
        record.put("event_timestamp_micro", keys.occurred_at_micros);
        if let Some(module) = body.get("module").and_then(Value::as_str) {
            record.put("event_module", module);
        }
        if let Some(currency) = &settings.currency {
            record.put("event_default_currency", currency.as_str());
        }
        let values = body
            .get("affected_values")
            .and_then(Value::as_array)
            .and_then(|all| {
                all.iter().find(|entry| {
                    entry.get("record_id").and_then(id_text).as_deref()
                        == Some(keys.object_id.as_str())
                })
            })
            .and_then(|entry| entry.get("values"))
            .and_then(Value::as_object);
        let personal = keys.object == "contact";
        let mut missing = Missing::default();
        match values {
            Some(values) => {
                for (field, value) in values {
                    if personal && !PERSON_FIELDS.contains(&field.as_str()) {
                        continue;
                    }
                    match value {
                        // A lookup: {"id": ..., "name": ...}.
                        Value::Object(lookup) if lookup.contains_key("id") => {
                            record
                                .put(format!("field_{field}"), lookup.get("id").and_then(id_text));
                            if let Some(name) = lookup.get("name") {
                                record.put(format!("field_{field}_name"), name.clone());
                            }
                        }
                        other => record.put(format!("field_{field}"), other.clone()),
                    }
                }
            }
            None if keys.action != "delete" => {
                missing.note::<()>(
                    "record",
                    Err(ApiError::NotConfigured {
                        api: "zoho",
                        reason: "the notification carries no values for the record (create the channel with return_affected_field_values) and records are not read from the CRM API".into(),
                    }),
                );
            }
            None => {}
        }
        put_pipeline_fields(&mut record, raw, &missing);
        Ok((record, missing))
    }
}
