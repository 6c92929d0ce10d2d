//! One HubSpot webhook event in, one flat enriched event out (the
//! `hubspot-crm` template; README "The HubSpot enriched event").
//!
//! HubSpot's events are thin: an id, what happened, at most one property.
//! The enricher reads the record as it is now through the CRM API (in
//! batches with other events' records, see [`super::api`]), with what the
//! dashboards join to it: a deal's stage history, pipeline and stages, its
//! primary company and first contact, the owner's name, and the labels of
//! the marketing-source property. Every property is kept as the string
//! HubSpot sent. A lookup that fails is named in
//! `pipeline_enrichment_missing` and leaves its fields out, so the event's
//! own facts still load and nothing known is blanked.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tributary_config::Secret;
use tributary_enrichment::custom_fields::{CustomFieldDefinition, put_custom_fields};
use tributary_enrichment::flatten::FlatRecord;
use tributary_enrichment::pii::{self, PiiPolicy};
use tributary_envelope::RawEvent;

use super::api::{HubSpotApi, ObjectType, Portal, PortalAccess, Record};
use super::{NAME, id_text};
use crate::SourceConfigError;
use crate::enrich::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, Missing, SourceEnricher,
    put_pipeline_fields,
};

/// Lookup names in `pipeline_enrichment_missing`.
pub const RECORD: &str = "record";
pub const ASSOCIATIONS: &str = "associations";
pub const PIPELINES: &str = "pipelines";
pub const OWNERS: &str = "owners";
pub const PROPERTIES: &str = "properties";
pub const COMPANY: &str = "company";

/// A tenant's enrichment choices.
#[derive(Debug, Clone)]
pub struct TenantEnrichment {
    /// The deal property that holds the marketing source.
    pub marketing_source_property: String,
    pub pii: PiiPolicy,
    pub pii_salt: Option<Secret>,
}

pub struct HubSpotEnricher {
    api: HubSpotApi,
    tenants: HashMap<String, TenantEnrichment>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let mut access = Vec::new();
    let mut tenants = HashMap::new();
    for (tenant, section) in &context.tenants {
        let settings =
            super::tenant_settings(section).map_err(|reason| SourceConfigError::Tenant {
                tenant: (*tenant).to_owned(),
                source_name: NAME,
                reason,
            })?;
        if let Some(token) = &settings.access_token {
            access.push(PortalAccess {
                tenant: (*tenant).to_owned(),
                base_url: settings.api_base_url.clone(),
                token: token.clone(),
                requests_per_10s: settings.requests_per_10s,
            });
        }
        tenants.insert(
            (*tenant).to_owned(),
            TenantEnrichment {
                marketing_source_property: settings.marketing_source_property.clone(),
                pii: settings.pii.clone(),
                pii_salt: settings.pii_salt.clone(),
            },
        );
    }
    let api = HubSpotApi::new(access, context.settings, context.http.clone());
    Ok(Box::new(HubSpotEnricher { api, tenants }))
}

impl SourceEnricher for HubSpotEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let element: Map<String, Value> = match serde_json::from_slice(&raw.body) {
                Ok(Value::Object(element)) => element,
                Ok(_) => {
                    return Err(EnrichFailure::unreadable_body(
                        "a HubSpot event is a JSON object",
                    ));
                }
                Err(err) => return Err(EnrichFailure::unreadable_body(err.to_string())),
            };
            let (record, missing) = self.enrich_event(raw, &element).await?;
            Enriched::from_record(&record, missing)
        })
    }

    /// Each portal's access, tried by listing its owners (which the
    /// enrichment needs anyway, so the answer is cached).
    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async {
            let mut checks = Vec::new();
            for (tenant, portal) in self.api.portals() {
                let outcome = portal
                    .owners()
                    .await
                    .map(|owners| format!("the token is accepted; {} owners listed", owners.len()));
                checks.push(AccessCheck {
                    tenant: tenant.clone(),
                    outcome,
                });
            }
            checks
        })
    }
}

/// What the webhook element says, read once.
struct Event {
    object: String,
    action: String,
    object_id: String,
    /// The record to read: the merge's primary for a merge.
    read_id: String,
}

fn text_of(element: &Map<String, Value>, key: &str) -> Option<String> {
    match element.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A record the API answered, with where and when it was read.
struct Found<'a> {
    portal: &'a Arc<Portal>,
    object: ObjectType,
    record: &'a Record,
    /// When the event arrived: joined reads must have started after it.
    received: i64,
}

impl HubSpotEnricher {
    async fn enrich_event(
        &self,
        raw: &RawEvent,
        element: &Map<String, Value>,
    ) -> Result<(FlatRecord, Missing), EnrichFailure> {
        let keys = raw.keys.clone().unwrap_or_default();
        let event = Event {
            object: keys.object.clone(),
            action: keys.action.clone(),
            object_id: keys.object_id.clone(),
            read_id: element
                .get("primaryObjectId")
                .and_then(id_text)
                .unwrap_or_else(|| keys.object_id.clone()),
        };
        let object = ObjectType::from_object(&event.object).ok_or_else(|| {
            EnrichFailure::unreadable_body(format!(
                "no enrichment for HubSpot object {:?}",
                event.object
            ))
        })?;
        let mut record = FlatRecord::new();
        let mut missing = Missing::default();
        put_event_fields(&mut record, raw, element, &event);

        let default_policy = TenantEnrichment {
            marketing_source_property: super::DEFAULT_MARKETING_SOURCE_PROPERTY.to_owned(),
            pii: PiiPolicy::default(),
            pii_salt: None,
        };
        let policy = self.tenants.get(&raw.tenant).unwrap_or(&default_policy);
        // A GDPR deletion erases the record: nothing is left to read.
        let erased = event.action == "privacyDeletion";
        // Reads that started after the event arrived saw its change.
        let received = raw.received_at_micros as i64;
        match self.api.portal(&raw.tenant) {
            _ if erased => put_record(&mut record, None),
            None => {
                // No API access configured: the event's own facts only.
                let _ = missing.note::<()>(RECORD, Err(no_access()));
            }
            Some(portal) => {
                if let Some(found) = missing.note(
                    RECORD,
                    portal.record(object, &event.read_id, received).await,
                ) {
                    put_record(&mut record, found.as_deref());
                    if let Some(found) = found {
                        let read = Found {
                            portal,
                            object,
                            record: &found,
                            received,
                        };
                        self.hydrate(read, policy, &mut record, &mut missing).await;
                    }
                }
            }
        }
        pii::apply(&policy.pii, policy.pii_salt.as_ref(), &mut record);
        put_pipeline_fields(&mut record, raw, &missing);
        Ok((record, missing))
    }

    /// The record's fields and what is joined to it.
    async fn hydrate(
        &self,
        read: Found<'_>,
        policy: &TenantEnrichment,
        record: &mut FlatRecord,
        missing: &mut Missing,
    ) {
        let Found {
            portal,
            object,
            record: found,
            received,
        } = read;
        let owner_id = found.property("hubspot_owner_id").map(str::to_owned);
        let owners = async {
            match owner_id {
                Some(_) => Some(portal.owners().await),
                None => None,
            }
        };
        match object {
            ObjectType::Deals => {
                let (companies, contacts, pipelines, definitions, owners) = tokio::join!(
                    portal.associations(
                        ObjectType::Deals,
                        ObjectType::Companies,
                        &found.id,
                        received
                    ),
                    portal.associations(
                        ObjectType::Deals,
                        ObjectType::Contacts,
                        &found.id,
                        received
                    ),
                    portal.pipelines(),
                    portal.property_definitions(ObjectType::Deals),
                    owners,
                );
                let companies = missing.note(ASSOCIATIONS, companies);
                let contacts = missing.note(ASSOCIATIONS, contacts);
                let company_id = companies.as_deref().and_then(first_primary);
                let contact_id = contacts
                    .as_deref()
                    .and_then(|c| c.first().map(|(id, _)| id.clone()));
                let definitions = missing.note(PROPERTIES, definitions);
                put_deal(
                    record,
                    found,
                    policy,
                    definitions.as_deref().map(Vec::as_slice),
                    companies.is_some().then_some(company_id.as_deref()),
                    contacts.is_some().then_some(contact_id.as_deref()),
                );
                if let Some(pipelines) = missing.note(PIPELINES, pipelines) {
                    put_pipeline(record, found.property("pipeline"), &pipelines);
                }
                if let Some(company_id) = company_id
                    && let Some(Some(company)) = missing.note(
                        COMPANY,
                        portal.referenced(ObjectType::Companies, &company_id).await,
                    )
                {
                    put_company(record, &company);
                }
                put_owner(record, owners.map(|o| missing.note(OWNERS, o)), found);
                put_custom(record, found, definitions.as_deref().map(Vec::as_slice));
            }
            ObjectType::Contacts => {
                let (definitions, owners) =
                    tokio::join!(portal.property_definitions(ObjectType::Contacts), owners);
                put_contact(record, found);
                put_owner(record, owners.map(|o| missing.note(OWNERS, o)), found);
                let definitions = missing.note(PROPERTIES, definitions);
                put_custom(record, found, definitions.as_deref().map(Vec::as_slice));
            }
            ObjectType::Companies => {
                let (definitions, owners) =
                    tokio::join!(portal.property_definitions(ObjectType::Companies), owners);
                put_company(record, found);
                put_owner(record, owners.map(|o| missing.note(OWNERS, o)), found);
                let definitions = missing.note(PROPERTIES, definitions);
                put_custom(record, found, definitions.as_deref().map(Vec::as_slice));
            }
            engagement => {
                let (deals, contacts, companies, owners) = tokio::join!(
                    portal.associations(engagement, ObjectType::Deals, &found.id, received),
                    portal.associations(engagement, ObjectType::Contacts, &found.id, received),
                    portal.associations(engagement, ObjectType::Companies, &found.id, received),
                    owners,
                );
                let first =
                    |associated: Option<Vec<(String, bool)>>| associated.map(|a| first_primary(&a));
                let deal = first(missing.note(ASSOCIATIONS, deals));
                let contact = first(missing.note(ASSOCIATIONS, contacts));
                let company = first(missing.note(ASSOCIATIONS, companies));
                put_activity(record, engagement, found, deal, contact, company);
                put_owner(record, owners.map(|o| missing.note(OWNERS, o)), found);
            }
        }
    }
}

fn no_access() -> tributary_enrichment::api_client::ApiError {
    tributary_enrichment::api_client::ApiError::NotConfigured {
        api: "hubspot",
        reason: "no access_token configured for the tenant".into(),
    }
}

/// The primary one, else the first.
fn first_primary(associated: &[(String, bool)]) -> Option<String> {
    associated
        .iter()
        .find(|(_, primary)| *primary)
        .or_else(|| associated.first())
        .map(|(id, _)| id.clone())
}

fn put_event_fields(
    record: &mut FlatRecord,
    raw: &RawEvent,
    element: &Map<String, Value>,
    event: &Event,
) {
    let keys = raw.keys.clone().unwrap_or_default();
    let occurred_at_ms = (keys.occurred_at_micros / 1_000) as i64;
    record.put(
        "event_id",
        text_of(element, "eventId").unwrap_or_else(|| raw.event_id.clone()),
    );
    record.put("event_object", event.object.clone());
    record.put("event_action", event.action.clone());
    record.put(
        "event_subscription_type",
        text_of(element, "subscriptionType").unwrap_or_else(|| "workflow".into()),
    );
    record.put("event_object_id", event.object_id.clone());
    record.put("event_portal_id", element.get("portalId").and_then(id_text));
    record.put("event_occurred_at", occurred_at_ms);
    record.put("event_timestamp_micro", keys.occurred_at_micros as i64);
    record.put("event_property_name", text_of(element, "propertyName"));
    record.put("event_property_value", text_of(element, "propertyValue"));
    record.put("event_change_source", text_of(element, "changeSource"));
    record.put("event_source_id", text_of(element, "sourceId"));
    record.put(
        "event_attempt_number",
        element.get("attemptNumber").and_then(Value::as_i64),
    );
    record.put(
        "event_primary_object_id",
        element.get("primaryObjectId").and_then(id_text),
    );
    let merged: Vec<String> = element
        .get("mergedObjectIds")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(id_text).collect())
        .unwrap_or_default();
    record.put("event_merged_object_ids", merged);
    record.put(
        "event_new_object_id",
        element.get("newObjectId").and_then(id_text),
    );
}

/// `record_*`: whether the API has the record, and its own times.
fn put_record(record: &mut FlatRecord, found: Option<&Record>) {
    record.put("record_found", found.is_some());
    let Some(found) = found else {
        return;
    };
    record.put("record_id", found.id.clone());
    record.put("record_archived", found.archived);
    record.put("record_created_at", found.created_at.clone());
    record.put("record_updated_at", found.updated_at.clone());
    record.put("record_archived_at", found.archived_at.clone());
    let micros = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_micros())
    };
    let version = micros(&found.updated_at).max(micros(&found.archived_at));
    record.put("record_version_micro", version);
}

fn put_properties(record: &mut FlatRecord, found: &Record, pairs: &[(&'static str, &str)]) {
    for (key, property) in pairs {
        record.put(*key, found.property(property).map(str::to_owned));
    }
}

fn put_deal(
    record: &mut FlatRecord,
    found: &Record,
    policy: &TenantEnrichment,
    definitions: Option<&[super::api::Property]>,
    company_id: Option<Option<&str>>,
    contact_id: Option<Option<&str>>,
) {
    put_properties(
        record,
        found,
        &[
            ("deal_name", "dealname"),
            ("deal_amount", "amount"),
            ("deal_currency", "deal_currency_code"),
            ("deal_pipeline_id", "pipeline"),
            ("deal_stage_id", "dealstage"),
            ("deal_close_date", "closedate"),
            ("deal_create_date", "createdate"),
            ("deal_is_closed", "hs_is_closed"),
            ("deal_is_closed_won", "hs_is_closed_won"),
            ("deal_closed_lost_reason", "closed_lost_reason"),
            ("deal_owner_id", "hubspot_owner_id"),
        ],
    );
    // The marketing source, an enumeration's value read as its label.
    if let Some(definitions) = definitions {
        let property = &policy.marketing_source_property;
        let value = found.property(property).map(|value| {
            definitions
                .iter()
                .find(|d| d.name == *property)
                .and_then(|d| d.options.iter().find(|(v, _)| v == value))
                .map_or_else(|| value.to_owned(), |(_, label)| label.clone())
        });
        record.put("deal_marketing_source", value);
    }
    if let Some(company_id) = company_id {
        record.put("deal_company_id", company_id.map(str::to_owned));
    }
    if let Some(contact_id) = contact_id {
        record.put("deal_contact_id", contact_id.map(str::to_owned));
    }
    // Oldest first: HubSpot lists the newest first.
    let mut history = found.history.get("dealstage").cloned().unwrap_or_default();
    history.reverse();
    let (ids, rest): (Vec<String>, Vec<(String, String)>) =
        history.into_iter().map(|(v, t, s)| (v, (t, s))).unzip();
    let (times, sources): (Vec<String>, Vec<String>) = rest.into_iter().unzip();
    record.put("deal_stage_history_ids", ids);
    record.put("deal_stage_history_times", times);
    record.put("deal_stage_history_sources", sources);
}

/// The deal's pipeline and every stage of it.
fn put_pipeline(
    record: &mut FlatRecord,
    pipeline_id: Option<&str>,
    pipelines: &[super::api::DealPipeline],
) {
    let Some(pipeline) = pipeline_id.and_then(|id| pipelines.iter().find(|p| p.id == id)) else {
        return;
    };
    record.put("deal_pipeline_name", pipeline.label.clone());
    record.put("deal_pipeline_order", pipeline.display_order);
    let column = |f: &dyn Fn(&super::api::PipelineStage) -> String| -> Vec<String> {
        pipeline.stages.iter().map(f).collect()
    };
    record.put("deal_pipeline_stage_ids", column(&|s| s.id.clone()));
    record.put("deal_pipeline_stage_names", column(&|s| s.label.clone()));
    record.put(
        "deal_pipeline_stage_orders",
        column(&|s| s.display_order.to_string()),
    );
    record.put(
        "deal_pipeline_stage_probabilities",
        column(&|s| s.probability.clone().unwrap_or_default()),
    );
    record.put(
        "deal_pipeline_stage_outcomes",
        column(&|s| s.outcome().to_owned()),
    );
}

fn put_contact(record: &mut FlatRecord, found: &Record) {
    put_properties(
        record,
        found,
        &[
            ("contact_first_name", "firstname"),
            ("contact_last_name", "lastname"),
            ("contact_email", "email"),
            ("contact_phone_number", "phone"),
            ("contact_position", "jobtitle"),
            ("contact_company_id", "associatedcompanyid"),
            ("contact_owner_id", "hubspot_owner_id"),
            ("contact_lifecycle_stage", "lifecyclestage"),
            ("contact_lead_status", "hs_lead_status"),
        ],
    );
}

fn put_company(record: &mut FlatRecord, found: &Record) {
    record.put("company_id", found.id.clone());
    // Its own version: a deal's company may come from the cache.
    record.put("company_updated_at", found.updated_at.clone());
    put_properties(
        record,
        found,
        &[
            ("company_name", "name"),
            ("company_domain", "domain"),
            ("company_industry", "industry"),
            ("company_size", "numberofemployees"),
            ("company_owner_id", "hubspot_owner_id"),
        ],
    );
}

fn put_activity(
    record: &mut FlatRecord,
    engagement: ObjectType,
    found: &Record,
    deal: Option<Option<String>>,
    contact: Option<Option<String>>,
    company: Option<Option<String>>,
) {
    let (kind, subject, status, direction) = match engagement {
        ObjectType::Calls => (
            "call",
            Some("hs_call_title"),
            Some("hs_call_status"),
            Some("hs_call_direction"),
        ),
        ObjectType::Emails => (
            "email",
            Some("hs_email_subject"),
            Some("hs_email_status"),
            Some("hs_email_direction"),
        ),
        ObjectType::Meetings => (
            "meeting",
            Some("hs_meeting_title"),
            Some("hs_meeting_outcome"),
            None,
        ),
        ObjectType::Tasks => (
            "task",
            Some("hs_task_subject"),
            Some("hs_task_status"),
            None,
        ),
        _ => ("note", None, None, None),
    };
    let property = |name: Option<&str>| name.and_then(|n| found.property(n)).map(str::to_owned);
    record.put("activity_type", kind);
    record.put("activity_subject", property(subject));
    record.put("activity_timestamp", property(Some("hs_timestamp")));
    record.put("activity_status", property(status));
    record.put(
        "activity_completed_at",
        property(Some("hs_task_completion_date")),
    );
    record.put("activity_direction", property(direction));
    record.put("activity_owner_id", property(Some("hubspot_owner_id")));
    if let Some(deal) = deal {
        record.put("activity_deal_id", deal);
    }
    if let Some(contact) = contact {
        record.put("activity_contact_id", contact);
    }
    if let Some(company) = company {
        record.put("activity_company_id", company);
    }
}

/// The record's owner's name and email, when the owners were read.
fn put_owner(
    record: &mut FlatRecord,
    owners: Option<Option<Arc<HashMap<String, super::api::Owner>>>>,
    found: &Record,
) {
    let (Some(Some(owners)), Some(id)) = (owners, found.property("hubspot_owner_id")) else {
        return;
    };
    let owner = owners.get(id);
    record.put("owner_name", owner.and_then(|o| o.name.clone()));
    record.put("owner_email", owner.and_then(|o| o.email.clone()));
}

/// The account's own properties of the record, with their definitions
/// (see `tributary_enrichment::custom_fields`).
fn put_custom(
    record: &mut FlatRecord,
    found: &Record,
    definitions: Option<&[super::api::Property]>,
) {
    let Some(definitions) = definitions else {
        return;
    };
    let fields = definitions
        .iter()
        .filter(|d| d.custom && found.properties.contains_key(&d.name))
        .map(|d| {
            let value = found.properties.get(&d.name).cloned().flatten();
            let definition = CustomFieldDefinition {
                key: &d.name,
                label: &d.label,
                field_type: &d.field_type,
                options: d.options.clone(),
            };
            (definition, value)
        });
    put_custom_fields(record, fields);
}

#[cfg(test)]
mod tests;
