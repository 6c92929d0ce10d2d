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
//!
//! A context Dataverse stripped of its images and parameters (over 256 KB,
//! warned `message_size_exceeded`) carries ids only: with the Web API
//! configured the record is read whole ([`super::api`]); without it the
//! event is `partial`, missing `record`.
//!
//! A `Win` or `Lose` carries no image: the opportunity's stage attributes
//! are read through the Web API, so the close enters its stage; without
//! the Web API, or when the read fails, the event is `partial`, missing
//! `stage`.
//!
//! An opportunity names its currency by reference (`transactioncurrencyid`):
//! its ISO code is looked up among the organization's currencies through
//! the Web API (`event_currency`); without the Web API, or when the lookup
//! fails, the event is `partial`, missing `currency`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_enrichment::api_client::ApiError;
use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::api::{WebApi, context_attributes};
use super::context::{self, keyed};
use super::{DynamicsTenant, NAME, tenant_settings, webhook};
use crate::enrich::{Missing, api_clients, check_each, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError,
    SourceEnricher,
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
    /// The Web API of every organization that configures it, by tenant.
    apis: BTreeMap<String, WebApi>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    let apis = api_clients(
        NAME,
        &tenants,
        context,
        |settings| settings.oauth.is_some(),
        |tenant, settings, store| {
            WebApi::for_tenant(
                tenant,
                settings,
                context.settings,
                context.http.clone(),
                store,
            )
        },
    )?;
    Ok(Box::new(DynamicsEnricher { tenants, apis }))
}

impl SourceEnricher for DynamicsEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let mut record = self.context_fields(raw)?;
            let mut missing = Missing::default();
            if stripped(raw) {
                match self.apis.get(&raw.tenant) {
                    Some(api) => {
                        let keys = raw.keys.clone().unwrap_or_default();
                        let read = api.record(&keys.object, &keys.object_id).await;
                        if let Some(Some(current)) = missing.note("record", read) {
                            put_attributes(&mut record, &keys.object, context_attributes(&current));
                        }
                    }
                    None => {
                        missing.note::<()>("record", Err(not_configured(STRIPPED)));
                    }
                }
            }
            if closes(raw) {
                // A Win or Lose carries no image: the stage the close
                // enters is the opportunity's, as the Web API has it.
                match self.apis.get(&raw.tenant) {
                    Some(api) => {
                        let keys = raw.keys.clone().unwrap_or_default();
                        let read = api.record(&keys.object, &keys.object_id).await;
                        if let Some(Some(current)) = missing.note("stage", read) {
                            let stage = context_attributes(&current)
                                .into_iter()
                                .filter(|(name, _)| STAGE_ATTRIBUTES.contains(&name.as_str()))
                                .collect();
                            put_attributes(&mut record, &keys.object, stage);
                        }
                    }
                    None => {
                        missing.note::<()>("stage", Err(not_configured(CLOSE_STAGE)));
                    }
                }
            }
            if let Some(currency) = currency_reference(&record) {
                let code = match self.apis.get(&raw.tenant) {
                    Some(api) => api.currency(&currency).await.and_then(|code| {
                        code.ok_or_else(|| ApiError::Refused {
                            api: "dynamics",
                            status: 404,
                            body: format!("the organization has no transactioncurrency {currency}"),
                        })
                    }),
                    None => Err(not_configured(CURRENCY)),
                };
                if let Some(code) = missing.note("currency", code) {
                    record.put("event_currency", code);
                }
            }
            put_pipeline_fields(&mut record, raw, &missing);
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(check_each(&self.apis, WebApi::who_am_i))
    }
}

/// The attributes that hold an opportunity's stage.
const STAGE_ATTRIBUTES: &[&str] = &["stepname", "stageid", "salesstagecode", "salesstage"];

/// Whether Dataverse stripped the context of its images and parameters.
fn stripped(raw: &RawEvent) -> bool {
    raw.warnings
        .iter()
        .any(|w| w.code == "message_size_exceeded")
}

/// The currency an opportunity names (`transactioncurrencyid`), when it
/// names one.
fn currency_reference(record: &FlatRecord) -> Option<String> {
    if record.get("event_object").and_then(Value::as_str) != Some("opportunity") {
        return None;
    }
    record
        .get("attr_transactioncurrencyid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether the event wins or loses an opportunity.
fn closes(raw: &RawEvent) -> bool {
    raw.keys.as_ref().is_some_and(|keys| {
        keys.object == "opportunity" && matches!(keys.action.as_str(), "Win" | "Lose")
    })
}

const STRIPPED: &str = "the context was over 256 KB and arrived without its attributes; set web_api_url with access_token or [oauth] to read the record";
const CURRENCY: &str = "the opportunity names its currency by reference only; set web_api_url with access_token or [oauth] to read the organization's currencies";
const CLOSE_STAGE: &str = "a Win or Lose carries no image; set web_api_url with access_token or [oauth] to read the stage the opportunity closes in";

fn not_configured(reason: &str) -> ApiError {
    ApiError::NotConfigured {
        api: "dynamics",
        reason: reason.into(),
    }
}

/// Puts a record's attributes as `attr_*`; a contact's or lead's only
/// those that are not personal data.
fn put_attributes(record: &mut FlatRecord, object: &str, attributes: Map<String, Value>) {
    let personal = matches!(object, "contact" | "lead");
    for (name, value) in attributes {
        let base = name.trim_end_matches("_name").trim_end_matches("_type");
        if personal && !PERSON_ATTRIBUTES.contains(&base) {
            continue;
        }
        let key = format!("attr_{name}");
        record.remove(&key);
        record.put(key, value);
    }
}

impl DynamicsEnricher {
    /// Without the Web API.
    pub fn new(tenants: BTreeMap<String, DynamicsTenant>) -> Self {
        DynamicsEnricher {
            tenants,
            apis: BTreeMap::new(),
        }
    }

    /// The flat event of a raw context without the Web API, and the lookups
    /// it misses.
    pub fn flat_event(&self, raw: &RawEvent) -> Result<(FlatRecord, Missing), EnrichFailure> {
        let mut record = self.context_fields(raw)?;
        let mut missing = Missing::default();
        if stripped(raw) {
            missing.note::<()>("record", Err(not_configured(STRIPPED)));
        }
        if closes(raw) {
            missing.note::<()>("stage", Err(not_configured(CLOSE_STAGE)));
        }
        if currency_reference(&record).is_some() {
            missing.note::<()>("currency", Err(not_configured(CURRENCY)));
        }
        put_pipeline_fields(&mut record, raw, &missing);
        Ok((record, missing))
    }

    /// The event's fields from the context: everything but the pipeline's own.
    fn context_fields(&self, raw: &RawEvent) -> Result<FlatRecord, EnrichFailure> {
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
        let target = keyed(parameters, "Target");
        for entity in [target, image].into_iter().flatten() {
            if entity.get("Attributes").is_some() {
                attributes.extend(context::attributes(entity));
            }
        }
        // The target holds what the operation set, the image everything:
        // only the target says whether this operation moved the stage.
        if keys.object == "opportunity" {
            let set = target.map(context::attributes).unwrap_or_default();
            let moved = keys.action == "Create"
                || STAGE_ATTRIBUTES.iter().any(|name| set.contains_key(*name));
            record.put("event_stage_changed", moved);
        }
        put_attributes(&mut record, &keys.object, attributes);
        if let Some(close) = keyed(parameters, "OpportunityClose") {
            for (name, value) in context::attributes(close) {
                record.put(format!("close_{name}"), value);
            }
        }
        if let Some(status) = keyed(parameters, "Status") {
            record.put("event_status_code", context::plain(status));
        }
        Ok(record)
    }
}
