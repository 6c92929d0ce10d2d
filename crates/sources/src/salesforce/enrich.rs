//! A Salesforce Outbound Message notification in, the flat `salesforce-crm`
//! event out.
//!
//! A notification already carries the record's latest values for every field
//! the message definition selected, so the event is the notification's
//! fields (`sobject_<Field>`, Salesforce's API names verbatim, nil as null)
//! with the org, the notification and the time to order by. Contacts and
//! leads keep only their relations and times: their names, emails, phones
//! and addresses are personal data and are not passed on.

use std::collections::BTreeMap;

use tributary_enrichment::flatten::FlatRecord;
use tributary_envelope::RawEvent;

use super::outbound::read_notification_bytes;
use super::{NAME, SalesforceTenant, tenant_settings};
use crate::enrich::{Missing, put_pipeline_fields};
use crate::mapped::tenants_by_name;
use crate::{
    BoxFuture, EnrichFailure, Enriched, EnricherContext, SourceConfigError, SourceEnricher,
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

pub struct SalesforceEnricher {
    tenants: BTreeMap<String, SalesforceTenant>,
}

pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let tenants = tenants_by_name(NAME, &context.tenants, tenant_settings)?;
    Ok(Box::new(SalesforceEnricher { tenants }))
}

impl SourceEnricher for SalesforceEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let record = self.flat_event(raw)?;
            Enriched::from_record(&record, Missing::default())
        })
    }
}

impl SalesforceEnricher {
    pub fn new(tenants: BTreeMap<String, SalesforceTenant>) -> Self {
        SalesforceEnricher { tenants }
    }

    /// The flat event of a raw notification.
    pub fn flat_event(&self, raw: &RawEvent) -> Result<FlatRecord, EnrichFailure> {
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
        put_pipeline_fields(&mut record, raw, &Missing::default());
        Ok(record)
    }
}
