//! A Zoho CRM notification's record in, the flat `zoho-crm` event out.
//!
//! The record's values are the notification's `affected_values` for its id
//! (a channel created with `return_affected_field_values`): the fields that
//! changed, new values only (`field_<API name>`; a lookup's id, with
//! `_name`). A notification without values for the record has the record
//! read from the CRM API ([`super::api`]) when the tenant configures it
//! (its `Modified_Time` the event's time when later than the
//! notification's); without the API the event is partial, missing
//! `record`. Contacts keep only their relations and times.
//!
//! A deal's stage is looked up in the org's stage definitions when the API
//! is configured (`stage_forecast_type`: open, won or lost; its order and
//! label). `event_stage_changed` says whether this event moved the stage
//! (an insert, or `Stage` among the notification's changed fields): only
//! then is its time when the deal was won or lost.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::api::CrmApi;
use super::{NAME, ZohoTenant, tenant_settings};
use crate::checks::id_text;
use crate::enrich::{Missing, api_clients, check_each, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError,
    SourceEnricher,
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
    /// The CRM API of every org that configures it, by tenant.
    apis: BTreeMap<String, CrmApi>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    let apis = api_clients(
        NAME,
        &tenants,
        context,
        |settings| settings.oauth.is_some(),
        |tenant, settings, store| {
            CrmApi::for_tenant(
                tenant,
                settings,
                context.settings,
                context.http.clone(),
                store,
            )
        },
    )?;
    Ok(Box::new(ZohoEnricher { tenants, apis }))
}

impl SourceEnricher for ZohoEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let (mut record, has_values, module) = self.notification_fields(raw)?;
            let keys = raw.keys.clone().unwrap_or_default();
            let mut missing = Missing::default();
            if !has_values && keys.action != "delete" {
                match self.apis.get(&raw.tenant) {
                    Some(api) => {
                        let read = api.record(&module, &keys.object_id).await;
                        if let Some(Some(current)) = missing.note("record", read) {
                            put_record(&mut record, &keys, &current);
                        }
                    }
                    None => missing = no_values(),
                }
            }
            if let (Some(api), Some(Value::String(stage))) = (
                self.apis.get(&raw.tenant),
                record.get("field_Stage").cloned(),
            ) && keys.object == "deal"
                && let Some(stages) = missing.note("stages", api.stages().await)
            {
                put_stage(&mut record, &stages, &stage);
            }
            put_pipeline_fields(&mut record, raw, &missing);
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(check_each(&self.apis, CrmApi::current_user))
    }

    /// Moves the expiry of each tenant's channels a day ahead (Zoho stops
    /// notifying at a channel's expiry). A channel Zoho no longer has
    /// (expired or disabled) is reported: it must be created again.
    fn upkeep(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async {
            let mut renewals = Vec::new();
            for (tenant, api) in &self.apis {
                let Some(settings) = self.tenants.get(tenant).filter(|s| s.renew_channels) else {
                    continue;
                };
                renewals.push(AccessCheck {
                    tenant: tenant.clone(),
                    outcome: renew_channels(api, &settings.channels()).await,
                });
            }
            renewals
        })
    }
}

/// How far ahead a renewal moves a channel's expiry.
const CHANNEL_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// Renews each of `channels` as Zoho has it; says until when, or which it
/// does not have.
async fn renew_channels(api: &CrmApi, channels: &[String]) -> Result<String, ApiError> {
    let known = api.channels().await?;
    let until = (chrono::Utc::now() + CHANNEL_LIFETIME)
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let mut gone = Vec::new();
    for channel in channels {
        let found = known
            .iter()
            .find(|c| c.get("channel_id").and_then(id_text).as_deref() == Some(channel.as_str()));
        match found {
            Some(found) => api.renew(found, &until).await?,
            None => gone.push(channel.as_str()),
        }
    }
    if gone.is_empty() {
        Ok(format!("{} channels renewed until {until}", channels.len()))
    } else {
        Err(ApiError::Refused {
            api: "zoho",
            status: 404,
            body: format!(
                "Zoho has no channel {} (expired or disabled): create it again with POST /crm/v8/actions/watch",
                gone.join(", ")
            ),
        })
    }
}

/// The definition of the deal's `stage`, when the org defines it.
fn put_stage(record: &mut FlatRecord, stages: &[super::api::StageDefinition], stage: &str) {
    if let Some(defined) = stages.iter().find(|s| s.actual_value == stage) {
        record.put("stage_forecast_type", defined.forecast_type.as_str());
        record.put("stage_sequence_number", defined.sequence_number);
        record.put("stage_display_value", defined.display_value.as_str());
    }
}

/// Without the API a notification without values leaves its record missing.
fn no_values() -> Missing {
    let mut missing = Missing::default();
    missing.note::<()>(
        "record",
        Err(ApiError::NotConfigured {
            api: "zoho",
            reason: "the notification carries no values for the record (create the channel with return_affected_field_values, or set api_domain with access_token or [oauth] to read it)".into(),
        }),
    );
    missing
}

/// Puts a record's values as `field_*` (a lookup as its id, with `_name`);
/// a contact's only those that are not personal data.
fn put_values(record: &mut FlatRecord, object: &str, values: &Map<String, Value>) {
    let personal = object == "contact";
    for (field, value) in values {
        if personal && !PERSON_FIELDS.contains(&field.as_str()) {
            continue;
        }
        match value {
            // A lookup: {"id": ..., "name": ...}.
            Value::Object(lookup) if lookup.contains_key("id") => {
                record.put(format!("field_{field}"), lookup.get("id").and_then(id_text));
                if let Some(name) = lookup.get("name") {
                    record.put(format!("field_{field}_name"), name.clone());
                }
            }
            other => record.put(format!("field_{field}"), other.clone()),
        }
    }
}

/// A record read from the API into the event, at its `Modified_Time` when
/// that is later than the notification.
fn put_record(
    record: &mut FlatRecord,
    keys: &tributary_envelope::EventKeys,
    current: &Map<String, Value>,
) {
    let mut values = current.clone();
    values.remove("id");
    put_values(record, &keys.object, &values);
    let modified = current
        .get("Modified_Time")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| u64::try_from(t.timestamp_micros()).ok());
    if let Some(modified) = modified.filter(|m| *m > keys.occurred_at_micros) {
        record.remove("event_timestamp_micro");
        record.put("event_timestamp_micro", modified);
    }
}

impl ZohoEnricher {
    /// Without the CRM API.
    pub fn new(tenants: BTreeMap<String, ZohoTenant>) -> Self {
        ZohoEnricher {
            tenants,
            apis: BTreeMap::new(),
        }
    }

    /// The flat event of a raw notification without the CRM API.
    pub fn flat_event(&self, raw: &RawEvent) -> Result<(FlatRecord, Missing), EnrichFailure> {
        let (mut record, has_values, _) = self.notification_fields(raw)?;
        let deleted = raw.keys.as_ref().is_some_and(|k| k.action == "delete");
        let missing = if has_values || deleted {
            Missing::default()
        } else {
            no_values()
        };
        put_pipeline_fields(&mut record, raw, &missing);
        Ok((record, missing))
    }

    /// The event's fields from the notification, whether it carried values
    /// for the record, and its module.
    fn notification_fields(
        &self,
        raw: &RawEvent,
    ) -> Result<(FlatRecord, bool, String), EnrichFailure> {
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
        if let Some(values) = values {
            put_values(&mut record, &keys.object, values);
        }
        let changed_fields = body
            .get("affected_fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get(keys.object_id.as_str()))
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str);
        let stage_changed = keys.action == "insert"
            || values.is_some_and(|v| v.contains_key("Stage"))
            || changed_fields.into_iter().any(|field| field == "Stage");
        if keys.object == "deal" {
            record.put("event_stage_changed", stage_changed);
        }
        let module = body
            .get("module")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((record, values.is_some(), module))
    }
}
