//! A Dynamics 365 `RemoteExecutionContext` in, the flat `dynamics-crm`
//! event out.
//!
//! The record's attributes come from the step's post image (every attribute
//! the image was registered with, after the change) over the target (what
//! the operation set), as plain values (`attr_<logical name>`; a reference's
//! id, with `_name` and `_type`). A `Win` or `Lose` carries its
//! `OpportunityClose` (`close_<attribute>`) and the new status. Contacts and
//! leads keep only their relations, state and times: the rest may be
//! personal data.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::context::{self, keyed};
use super::{DynamicsTenant, NAME, tenant_settings, webhook};
use crate::enrich::{Missing, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError, SourceEnricher,
};

const PERSON_ATTRIBUTES: &[&str] = &[
    "contactid",
    "leadid",
    "parentcustomerid",
    "parentaccountid",
    "ownerid",
    "statecode",
    "statuscode",
    "createdon",
    "modifiedon",
    "leadsourcecode",
];

pub struct DynamicsEnricher {
    tenants: BTreeMap<String, DynamicsTenant>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    Ok(Box::new(DynamicsEnricher { tenants }))
}

impl SourceEnricher for DynamicsEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let (record, missing) = self.flat_event(raw)?;
            Enriched::from_record(&record, missing)
        })
    }
}

/// A context Dataverse stripped of its images and parameters (over 256 KB)
/// carries ids only: the record is missing until it is read from the Web
/// API, which is not done here.
fn stripped_record(raw: &RawEvent) -> Missing {
    let mut missing = Missing::default();
    if raw
        .warnings
        .iter()
        .any(|w| w.code == "message_size_exceeded")
    {
        missing.note::<()>(
            "record",
            Err(ApiError::NotConfigured {
                api: "dynamics",
                reason: "the context was over 256 KB and arrived without its attributes; records are not read from the Web API".into(),
            }),
        );
    }
    missing
}

impl DynamicsEnricher {
    pub fn new(tenants: BTreeMap<String, DynamicsTenant>) -> Self {
        DynamicsEnricher { tenants }
    }

    /// The flat event of a raw context, and the lookups it misses.
    pub fn flat_event(&self, raw: &RawEvent) -> Result<(FlatRecord, Missing), EnrichFailure> {
        let body: Map<String, Value> = serde_json::from_slice(&raw.body)
            .map_err(|err| EnrichFailure::unreadable_body(format!("not a context: {err}")))?;
        let settings = self.tenants.get(&raw.tenant).ok_or_else(|| {
            EnrichFailure::unreadable_body(format!(
                "tenant {:?} has no [tenants.{}.dynamics] section",
                raw.tenant, raw.tenant
            ))
        })?;
        let keys = raw.keys.clone().unwrap_or_default();
        let mut record = FlatRecord::new();
        record.put("event_object", keys.object.as_str());
        record.put("event_action", keys.action.as_str());
        record.put("event_object_id", keys.object_id.as_str());
        record.put("event_organization_id", settings.organization_id.as_str());
        let at = webhook::version_micros(&body)
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(raw.received_at_micros);
        record.put("event_timestamp_micro", at);
        if let Some(depth) = body.get("Depth").and_then(Value::as_i64) {
            record.put("event_depth", depth);
        }
        if let Some(currency) = &settings.currency {
            record.put("event_default_currency", currency.as_str());
        }
        let parameters = body.get("InputParameters");
        let mut attributes = Map::new();
        let image = keyed(body.get("PostEntityImages"), "PostImage").or_else(|| {
            body.get("PostEntityImages")?
                .as_array()?
                .first()?
                .get("value")
        });
        // The target first, then the post image over it: the image holds the
        // state after the whole operation.
        for entity in [keyed(parameters, "Target"), image].into_iter().flatten() {
            if entity.get("Attributes").is_some() {
                attributes.extend(context::attributes(entity));
            }
        }
        let personal = matches!(keys.object.as_str(), "contact" | "lead");
        for (name, value) in attributes {
            let base = name.trim_end_matches("_name").trim_end_matches("_type");
            if personal && !PERSON_ATTRIBUTES.contains(&base) {
                continue;
            }
            record.put(format!("attr_{name}"), value);
        }
        if let Some(close) = keyed(parameters, "OpportunityClose") {
            for (name, value) in context::attributes(close) {
                record.put(format!("close_{name}"), value);
            }
        }
        if let Some(status) = keyed(parameters, "Status") {
            record.put("event_status_code", context::plain(status));
        }
        let missing = stripped_record(raw);
        put_pipeline_fields(&mut record, raw, &missing);
        Ok((record, missing))
    }
}
