//! A Freshsales webhook's record in, the flat `freshsales-crm` event out.
//!
//! The record is read whole through the API ([`super::api`]) whatever the
//! workflow sent: its fields the mapping uses as `record_<field>`, its
//! stage (`stage_*`: name, position, probability and `forecast_type`, which
//! says won or lost), its pipeline's and owner's names and its account's
//! name, side-loaded by the same read; a sales activity's type by its name
//! (`activity_type`, from the account's list of types, read once). The
//! event's version is the record's
//! `updated_at`, so every read of one state is the same version. A record
//! the API no longer has, or has in its recycle bin (`is_deleted`), is a
//! delete. When the API cannot be read the event is partial (missing
//! `record`) and is enriched again later.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::api::{FreshsalesApi, ReadRecord};
use super::{FreshsalesTenant, NAME, collection_of, tenant_settings};
use crate::enrich::{Missing, api_clients, check_each, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError,
    SourceEnricher,
};

/// The fields of each object the mapping uses (a contact's personal data
/// is not among them).
fn fields_of(object: &str) -> &'static [&'static str] {
    match object {
        "deal" => &[
            "name",
            "amount",
            "currency_id",
            "deal_stage_id",
            "deal_pipeline_id",
            "probability",
            "expected_close",
            "closed_date",
            "stage_updated_time",
            "owner_id",
            "sales_account_id",
            "created_at",
            "updated_at",
        ],
        // A sales activity's notes are free text about people: not passed on.
        "sales_activity" => &[
            "title",
            "sales_activity_type_id",
            "start_date",
            "end_date",
            "owner_id",
            "targetable_type",
            "targetable_id",
            "created_at",
            "updated_at",
        ],
        "sales_account" => &[
            "name",
            "website",
            "number_of_employees",
            "owner_id",
            "created_at",
            "updated_at",
        ],
        _ => &["owner_id", "sales_account_id", "created_at", "updated_at"],
    }
}

pub struct FreshsalesEnricher {
    tenants: BTreeMap<String, FreshsalesTenant>,
    apis: BTreeMap<String, FreshsalesApi>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    let apis = api_clients(
        NAME,
        &tenants,
        context,
        |_| false,
        |tenant, settings, _| {
            FreshsalesApi::for_tenant(tenant, settings, context.settings, context.http.clone())
        },
    )?;
    Ok(Box::new(FreshsalesEnricher { tenants, apis }))
}

impl SourceEnricher for FreshsalesEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let settings = self.tenants.get(&raw.tenant).ok_or_else(|| {
                EnrichFailure::unreadable_body(format!(
                    "tenant {:?} has no [tenants.{}.freshsales] section",
                    raw.tenant, raw.tenant
                ))
            })?;
            let keys = raw.keys.clone().unwrap_or_default();
            let collection = collection_of(&keys.object).ok_or_else(|| {
                EnrichFailure::unreadable_body(format!(
                    "{:?} is not a Freshsales record Tributary reads",
                    keys.object
                ))
            })?;
            let mut record = header(settings, &keys);
            let mut missing = Missing::default();
            let api = self.apis.get(&raw.tenant);
            if let Some(api) = api {
                let read = api.record(collection, &keys.object_id).await;
                match missing.note("record", read) {
                    Some(Some(read)) => {
                        let currency = match read.record.get("currency_id") {
                            Some(id) if keys.object == "deal" => {
                                missing.note("currency", api.currency(id).await).flatten()
                            }
                            _ => None,
                        };
                        put_read(&mut record, &keys, &read, currency);
                        if let Some(id) = read.record.get("sales_activity_type_id")
                            && keys.object == "sales_activity"
                            && let Some(Some(name)) =
                                missing.note("activity_type", api.activity_type(id).await)
                        {
                            record.put("activity_type", name);
                        }
                    }
                    Some(None) => deleted(&mut record),
                    None => {}
                }
            }
            put_pipeline_fields(&mut record, raw, &missing);
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(check_each(&self.apis, FreshsalesApi::owners))
    }
}

/// The `event_*` fields, from the collector's keys.
pub fn header(settings: &FreshsalesTenant, keys: &tributary_envelope::EventKeys) -> FlatRecord {
    let mut record = FlatRecord::new();
    record.put("event_object", keys.object.as_str());
    record.put("event_action", keys.action.as_str());
    record.put("event_object_id", keys.object_id.as_str());
    record.put("event_account", settings.account());
    record.put("event_timestamp_micro", keys.occurred_at_micros);
    if let Some(currency) = &settings.currency {
        record.put("event_default_currency", currency.as_str());
    }
    record
}

fn deleted(record: &mut FlatRecord) {
    record.remove("event_action");
    record.put("event_action", "delete");
}

/// The record as read into the event, versioned by its `updated_at`.
pub fn put_read(
    record: &mut FlatRecord,
    keys: &tributary_envelope::EventKeys,
    read: &ReadRecord,
    currency: Option<String>,
) {
    let fields = &read.record;
    for field in fields_of(&keys.object) {
        if let Some(value) = fields.get(*field) {
            record.put(format!("record_{field}"), value.clone());
        }
    }
    if let Some(currency) = currency {
        record.put("record_currency", currency);
    }
    let updated = fields
        .get("updated_at")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| u64::try_from(t.timestamp_micros()).ok());
    if let Some(updated) = updated {
        record.remove("event_timestamp_micro");
        record.put("event_timestamp_micro", updated);
    }
    if fields.get("is_deleted") == Some(&Value::Bool(true)) {
        deleted(record);
    } else if keys.action == "delete" {
        // The workflow said deleted, but the API still has the record: the
        // API is the later word.
        record.remove("event_action");
        record.put("event_action", "update");
    }
    let named = |collection: &str, id_field: &str| -> Option<&Map<String, Value>> {
        read.included(collection, fields.get(id_field)?)
    };
    if let Some(owner) = named("users", "owner_id") {
        put_text(
            record,
            "owner_name",
            owner,
            &["display_name", "name", "email"],
        );
    }
    if let Some(stage) = named("deal_stages", "deal_stage_id") {
        put_text(record, "stage_name", stage, &["name"]);
        put_text(record, "stage_forecast_type", stage, &["forecast_type"]);
        for (from, to) in [
            ("position", "stage_position"),
            ("probability", "stage_probability"),
        ] {
            if let Some(value) = stage.get(from).filter(|v| v.is_number()) {
                record.put(to, value.clone());
            }
        }
    }
    if let Some(pipeline) = named("deal_pipelines", "deal_pipeline_id") {
        put_text(record, "deal_pipeline_name", pipeline, &["name"]);
    }
    if let Some(account) = named("sales_accounts", "sales_account_id") {
        put_text(record, "account_name", account, &["name"]);
    }
}

/// The first of `names` that `from` has as text, as `to`.
fn put_text(record: &mut FlatRecord, to: &'static str, from: &Map<String, Value>, names: &[&str]) {
    if let Some(text) = names
        .iter()
        .find_map(|name| from.get(*name).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
    {
        record.put(to, text);
    }
}
