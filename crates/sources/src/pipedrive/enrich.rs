//! One Pipedrive webhook in, one flat self-contained event out.
//!
//! Groups of fields, each documented in the README:
//! `event_*` (the webhook's meta, v1 and v2 alike), `deal_*`, `marketing_*`,
//! `contact_*` (the deal's person, or the person itself), `organization_*`,
//! `metrics_*` (per-contact aggregates), `email_validation_*`, `activity_*`,
//! and `pipeline_*` (what the pipeline adds). A group's keys are all present
//! for its object (null when unknown), except `deal_previous_stage*` and
//! `deal_previous_status` (only when the stage or status changed) and `event_prepublish_timestamp` (only when sent).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tributary_config::Secret;
use tributary_enrichment::email_validation::EmailValidator;
use tributary_enrichment::flatten::FlatRecord;
use tributary_enrichment::pii;
use tributary_envelope::RawEvent;

use super::api::{DealSummary, FieldDefinitions, FieldKind, PipedriveApi, TenantAccess};
use super::{
    Action, Activity, Deal, NAME, Organization, Person, PiiPolicy, PipedriveEvent, PipedriveTenant,
    Snapshot, tenant_settings,
};
use crate::SourceConfigError;
use crate::enrich::{
    AccessCheck, BoxFuture, EnrichFailure, Enriched, EnricherContext, Missing, SourceEnricher,
    put_pipeline_fields,
};

/// A tenant's enrichment choices, from `[tenants.<tenant>.pipedrive]`.
#[derive(Debug, Clone, Default)]
pub struct TenantEnrichment {
    pub marketing_source_field: Option<String>,
    pub marketing_campaign_field: Option<String>,
    pub company_size_field: Option<String>,
    pub industry_field: Option<String>,
    pub pii: PiiPolicy,
    pub pii_salt: Option<Secret>,
    /// Whether contacts' emails may go to the email verifier.
    pub verify_emails: bool,
}

impl From<&PipedriveTenant> for TenantEnrichment {
    fn from(settings: &PipedriveTenant) -> Self {
        TenantEnrichment {
            marketing_source_field: settings.marketing_source_field.clone(),
            marketing_campaign_field: settings.marketing_campaign_field.clone(),
            company_size_field: settings.company_size_field.clone(),
            industry_field: settings.industry_field.clone(),
            pii: settings.pii.clone(),
            pii_salt: settings.pii_salt.clone(),
            verify_emails: settings.verify_emails,
        }
    }
}

pub struct PipedriveEnricher {
    api: PipedriveApi,
    email: Option<Arc<EmailValidator>>,
    tenants: HashMap<String, (Arc<str>, TenantEnrichment)>,
}

/// Builds the enricher from every tenant's `[tenants.<tenant>.pipedrive]` section.
pub fn build(context: &EnricherContext<'_>) -> Result<Box<dyn SourceEnricher>, SourceConfigError> {
    let mut access = Vec::new();
    let mut policies = HashMap::new();
    for (tenant, section) in &context.tenants {
        let settings = tenant_settings(section).map_err(|reason| SourceConfigError::Tenant {
            tenant: (*tenant).to_owned(),
            source_name: NAME,
            reason,
        })?;
        if let (Some(base_url), Some(token)) = (&settings.api_base_url, &settings.api_token) {
            access.push(TenantAccess {
                tenant: (*tenant).to_owned(),
                base_url: base_url.clone(),
                token: token.clone(),
                requests_per_2s: settings.requests_per_2s,
            });
        }
        policies.insert((*tenant).to_owned(), TenantEnrichment::from(&settings));
    }
    let api = PipedriveApi::new(access, context.settings, context.http.clone());
    Ok(Box::new(PipedriveEnricher::new(
        api,
        context.email.clone(),
        policies,
    )))
}

impl SourceEnricher for PipedriveEnricher {
    fn enrich<'a>(&'a self, raw: &'a RawEvent) -> BoxFuture<'a, Result<Enriched, EnrichFailure>> {
        Box::pin(async move {
            let event = super::parse(&raw.body)
                .map_err(|err| EnrichFailure::unreadable_body(err.to_string()))?;
            let (record, missing) = self.enrich_event(raw, event).await;
            Enriched::from_record(&record, missing)
        })
    }

    fn check_access(&self) -> BoxFuture<'_, Vec<AccessCheck>> {
        Box::pin(async {
            self.api
                .check_access()
                .await
                .into_iter()
                .map(|(tenant, outcome)| AccessCheck { tenant, outcome })
                .collect()
        })
    }
}

impl PipedriveEnricher {
    pub fn new(
        api: PipedriveApi,
        email: Option<Arc<EmailValidator>>,
        tenants: HashMap<String, TenantEnrichment>,
    ) -> Self {
        let tenants = tenants
            .into_iter()
            .map(|(name, policy)| (name.clone(), (Arc::from(name.as_str()), policy)))
            .collect();
        PipedriveEnricher {
            api,
            email,
            tenants,
        }
    }

    /// The enriched event for one raw webhook. Takes the event by value so
    /// its text moves into the record instead of being copied.
    pub async fn enrich_event(
        &self,
        raw: &RawEvent,
        mut event: PipedriveEvent,
    ) -> (FlatRecord, Missing) {
        let default_policy = TenantEnrichment::default();
        let (tenant, policy) = match self.tenants.get(&raw.tenant) {
            Some((name, policy)) => (name.clone(), policy),
            None => (Arc::from(raw.tenant.as_str()), &default_policy),
        };
        // What this event changes must not be served stale to later events.
        if let Some(id) = event.object_id.as_i64() {
            self.api.invalidate(&tenant, &event.object, id).await;
        }
        let mut record = FlatRecord::new();
        let mut missing = Missing::default();
        put_event_fields(&mut record, &mut event);
        // The object's latest state: after the change, or the last one before a delete.
        let latest = event.current.take().or_else(|| event.previous.take());
        match latest {
            Some(Snapshot::Deal(deal)) => {
                self.deal(&tenant, policy, &event, *deal, &mut record, &mut missing)
                    .await
            }
            Some(Snapshot::Person(person)) => {
                self.person(&tenant, policy, &event, &person, &mut record, &mut missing)
                    .await
            }
            Some(Snapshot::Organization(org)) => {
                let fields = missing.note(
                    "organization_fields",
                    self.api.fields(&tenant, FieldKind::Organization).await,
                );
                put_organization(&mut record, policy, org.id, Some(&org), fields.as_deref());
            }
            Some(Snapshot::Activity(activity)) => {
                self.activity(&tenant, activity, &mut record, &mut missing)
                    .await
            }
            Some(Snapshot::Other { .. }) | None => {}
        }
        pii::apply(&policy.pii, policy.pii_salt.as_ref(), &mut record);
        put_pipeline_fields(&mut record, raw, &missing);
        (record, missing)
    }

    async fn deal(
        &self,
        tenant: &Arc<str>,
        policy: &TenantEnrichment,
        event: &PipedriveEvent,
        mut deal: Deal,
        record: &mut FlatRecord,
        missing: &mut Missing,
    ) {
        let previous_stage_id = match &event.previous {
            Some(Snapshot::Deal(before)) => before
                .stage_id
                .filter(|before| Some(*before) != deal.stage_id),
            _ => None,
        };
        let (
            stage,
            previous_stage,
            pipeline,
            owner,
            deal_fields,
            person,
            organization,
            org_fields,
            person_deals,
        ) = tokio::join!(
            async { Some(self.api.stage(tenant, deal.stage_id?).await) },
            async { Some(self.api.stage(tenant, previous_stage_id?).await) },
            async { Some(self.api.pipeline_name(tenant, deal.pipeline_id?).await) },
            async {
                match &deal.owner_name {
                    Some(name) => Some(Ok(Some(Arc::new(name.clone())))),
                    None => Some(self.api.user_name(tenant, deal.owner_id?).await),
                }
            },
            self.api.fields(tenant, FieldKind::Deal),
            async { Some(self.api.person(tenant, deal.person_id?).await) },
            async { Some(self.api.organization(tenant, deal.org_id?).await) },
            async {
                deal.org_id?;
                Some(self.api.fields(tenant, FieldKind::Organization).await)
            },
            async { Some(self.api.person_deals(tenant, deal.person_id?).await) },
        );
        let stage = stage.and_then(|s| missing.note("stage", s)).flatten();
        let previous_stage = previous_stage
            .and_then(|s| missing.note("stage", s))
            .flatten();
        let pipeline = pipeline.and_then(|p| missing.note("pipeline", p)).flatten();
        let owner = owner.and_then(|o| missing.note("owner", o)).flatten();
        let deal_fields = missing.note("deal_fields", deal_fields);
        let person = person.and_then(|p| missing.note("person", p)).flatten();
        let organization = organization
            .and_then(|o| missing.note("organization", o))
            .flatten();
        let org_fields = org_fields.and_then(|f| missing.note("organization_fields", f));

        let deleted = event.action == Action::Deleted;
        record.put("deal_id", deal.id.or(event.object_id.as_i64()));
        record.put("deal_title", deal.title.take());
        record.put("deal_stage", stage.as_ref().and_then(|s| s.name.clone()));
        record.put("deal_stage_id", deal.stage_id);
        record.put(
            "deal_stage_order_nr",
            stage.as_ref().and_then(|s| s.order_nr),
        );
        record.put(
            "deal_stage_probability",
            stage.as_ref().and_then(|s| s.deal_probability),
        );
        if let Some(previous_id) = previous_stage_id {
            record.put(
                "deal_previous_stage",
                previous_stage.as_ref().and_then(|s| s.name.clone()),
            );
            record.put("deal_previous_stage_id", previous_id);
        }
        record.put("deal_pipeline", pipeline.map(|p| (*p).clone()));
        record.put(
            "deal_pipeline_id",
            deal.pipeline_id
                .or(stage.as_ref().and_then(|s| s.pipeline_id)),
        );
        record.put("deal_value", deal.value);
        record.put("deal_currency", deal.currency.take());
        // Only a status change carries the status it left; a delete leaves the
        // deal's last status. The won-deals view counts wins and reversals by it.
        let previous_status = if deleted {
            deal.status.clone()
        } else {
            match &event.previous {
                Some(Snapshot::Deal(before)) => before
                    .status
                    .clone()
                    .filter(|before| Some(before) != deal.status.as_ref()),
                _ => None,
            }
        };
        let status = if deleted {
            Some("deleted".to_owned())
        } else {
            deal.status.take()
        };
        record.put("deal_status", status.clone());
        if previous_status.is_some() {
            record.put("deal_previous_status", previous_status);
        }
        record.put("deal_probability", deal.probability);
        record.put("deal_owner_id", deal.owner_id);
        record.put("deal_owner_name", owner.map(|o| (*o).clone()));
        record.put("deal_expected_close_date", deal.expected_close_date.take());
        record.put("deal_add_time", deal.add_time.take());
        record.put("deal_update_time", deal.update_time.take());
        record.put("deal_won_time", deal.won_time.take());
        record.put("deal_lost_time", deal.lost_time.take());
        record.put("deal_lost_reason", deal.lost_reason.take());
        record.put("deal_stage_change_time", deal.stage_change_time.take());

        let label = |field: &Option<String>, fallback: Value| -> Value {
            match (field, deal_fields.as_deref()) {
                (Some(key), Some(defs)) => deal
                    .custom_fields
                    .get(key)
                    .map(|v| defs.label(key, v))
                    .unwrap_or(Value::Null),
                (Some(key), None) => deal
                    .custom_fields
                    .get(key)
                    .filter(|v| !v.is_number())
                    .cloned()
                    .unwrap_or(Value::Null),
                (None, _) => fallback,
            }
        };
        let channel = match (deal.channel, deal_fields.as_deref()) {
            (Some(id), Some(defs)) => match defs.label("channel", &Value::from(id)) {
                Value::String(label) => Value::from(label),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        record.put(
            "marketing_source",
            label(&policy.marketing_source_field, channel),
        );
        record.put(
            "marketing_campaign",
            label(
                &policy.marketing_campaign_field,
                deal.channel_id
                    .clone()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            ),
        );

        put_contact(record, deal.person_id, person.as_deref());
        let org_id = deal.org_id;
        put_organization(
            record,
            policy,
            org_id,
            organization.as_deref(),
            org_fields.as_deref(),
        );

        // Per-contact aggregates: the person's deals, this event's state first.
        let aggregates = match person_deals {
            Some(list) => match missing.note("person_deals", list) {
                Some(list) => {
                    let deal_id = deal.id.or(event.object_id.as_i64());
                    let summary = DealSummary {
                        value: deal.value.unwrap_or(0.0),
                        status: status.unwrap_or_else(|| "open".into()),
                        as_of_micro: event.meta.timestamp_micro,
                    };
                    let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
                    let result = match deal_id {
                        Some(id) if deleted => list.aggregates(None, Some(id)),
                        Some(id) => list.aggregates(Some((id, &summary)), None),
                        None => list.aggregates(None, None),
                    };
                    if let Some(id) = deal_id {
                        list.apply(id, Some(summary));
                    }
                    Some(result)
                }
                None => None,
            },
            None => None,
        };
        // A deal that moved to another person leaves the old person's list.
        if let Some(Snapshot::Deal(before)) = &event.previous
            && let (Some(old), Some(id)) = (
                before.person_id.filter(|p| Some(*p) != deal.person_id),
                deal.id,
            )
            && let Some(list) = self.api.cached_person_deals(tenant, old).await
        {
            list.lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply(id, None);
        }
        put_aggregates(record, aggregates);
        self.email(
            policy,
            person.as_ref().and_then(|p| p.email.as_deref()),
            record,
            missing,
        )
        .await
    }

    async fn person(
        &self,
        tenant: &Arc<str>,
        policy: &TenantEnrichment,
        event: &PipedriveEvent,
        person: &Person,
        record: &mut FlatRecord,
        missing: &mut Missing,
    ) {
        let person_id = person.id.or(event.object_id.as_i64());
        let (organization, org_fields, deals) = tokio::join!(
            async { Some(self.api.organization(tenant, person.org_id?).await) },
            async {
                person.org_id?;
                Some(self.api.fields(tenant, FieldKind::Organization).await)
            },
            async {
                if event.action == Action::Deleted {
                    return None;
                }
                Some(self.api.person_deals(tenant, person_id?).await)
            },
        );
        let organization = organization
            .and_then(|o| missing.note("organization", o))
            .flatten();
        let org_fields = org_fields.and_then(|f| missing.note("organization_fields", f));
        put_contact(record, person_id, Some(person));
        put_organization(
            record,
            policy,
            person.org_id,
            organization.as_deref(),
            org_fields.as_deref(),
        );
        let aggregates = deals
            .and_then(|d| missing.note("person_deals", d))
            .map(|list| {
                list.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .aggregates(None, None)
            });
        put_aggregates(record, aggregates);
        self.email(policy, person.email.as_deref(), record, missing)
            .await
    }

    async fn activity(
        &self,
        tenant: &Arc<str>,
        mut activity: Activity,
        record: &mut FlatRecord,
        missing: &mut Missing,
    ) {
        let user = match activity.user_id {
            Some(id) => missing
                .note("owner", self.api.user_name(tenant, id).await)
                .flatten(),
            None => None,
        };
        record.put("activity_id", activity.id);
        record.put("activity_type", activity.activity_type.take());
        record.put("activity_subject", activity.subject.take());
        record.put("activity_done", activity.done);
        record.put("activity_due_date", activity.due_date.take());
        record.put("activity_due_time", activity.due_time.take());
        record.put("activity_user_id", activity.user_id);
        record.put("activity_user_name", user.map(|u| (*u).clone()));
        record.put("activity_deal_id", activity.deal_id);
        record.put("activity_person_id", activity.person_id);
        record.put("activity_org_id", activity.org_id);
        record.put("activity_add_time", activity.add_time.take());
        record.put(
            "activity_marked_as_done_time",
            activity.marked_as_done_time.take(),
        );
        record.put("activity_update_time", activity.update_time.take())
    }

    /// The email verdict, flattened, when a verifier is configured and the
    /// tenant chose to send its contacts' emails there.
    async fn email(
        &self,
        policy: &TenantEnrichment,
        email: Option<&str>,
        record: &mut FlatRecord,
        missing: &mut Missing,
    ) {
        let (Some(validator), Some(email), true) = (&self.email, email, policy.verify_emails)
        else {
            return;
        };
        if let Some(verdict) = missing.note("email_validation", validator.validate(email).await) {
            for (key, value) in verdict.iter() {
                record.put(key.clone(), value.clone());
            }
        }
    }
}

fn put_event_fields(record: &mut FlatRecord, event: &mut PipedriveEvent) {
    let meta = &mut event.meta;
    record.put("event_action", event.action.as_str());
    record.put("event_change_source", meta.change_source.take());
    record.put("event_id", event.object_id.to_json());
    record.put("event_object", event.object.as_str());
    record.put("event_is_bulk_update", meta.is_bulk_update);
    record.put(
        "event_permitted_user_ids",
        std::mem::take(&mut meta.permitted_user_ids),
    );
    record.put(
        "event_pipedrive_service_name",
        meta.pipedrive_service_name.take(),
    );
    record.put(
        "event_timestamp",
        meta.timestamp_micro.div_euclid(1_000_000),
    );
    record.put("event_timestamp_micro", meta.timestamp_micro);
    if let Some(prepublish) = meta.prepublish_timestamp {
        record.put("event_prepublish_timestamp", prepublish);
    }
    record.put("event_trans_pending", meta.trans_pending);
    record.put("event_user_id", meta.user_id);
    record.put("event_webhook_id", meta.webhook_id.take());
    record.put("event_company_id", meta.company_id.take());
    if let Some(into) = &meta.merged_to_id {
        record.put("event_merged_to_id", into.clone());
    }
    if let Some(from) = &meta.merged_from_id {
        record.put("event_merged_from_id", from.clone());
    }
}

fn put_contact(record: &mut FlatRecord, person_id: Option<i64>, person: Option<&Person>) {
    record.put("contact_id", person_id);
    record.put("contact_email", person.and_then(|p| p.email.clone()));
    record.put(
        "contact_first_name",
        person.and_then(|p| p.first_name.clone()),
    );
    record.put(
        "contact_last_name",
        person.and_then(|p| p.last_name.clone()),
    );
    record.put("contact_phone_number", person.and_then(|p| p.phone.clone()));
    record.put("contact_position", person.and_then(|p| p.job_title.clone()))
}

fn put_organization(
    record: &mut FlatRecord,
    policy: &TenantEnrichment,
    org_id: Option<i64>,
    org: Option<&Organization>,
    fields: Option<&FieldDefinitions>,
) {
    let custom = |key: &Option<String>| -> Value {
        let (Some(key), Some(org)) = (key, org) else {
            return Value::Null;
        };
        match (org.custom_fields.get(key), fields) {
            (Some(value), Some(defs)) => defs.label(key, value),
            _ => Value::Null,
        }
    };
    record.put("organization_id", org.and_then(|o| o.id).or(org_id));
    record.put("organization_name", org.and_then(|o| o.name.clone()));
    record.put(
        "organization_company_size",
        custom(&policy.company_size_field),
    );
    record.put("organization_industry", custom(&policy.industry_field))
}

fn put_aggregates(record: &mut FlatRecord, aggregates: Option<(i64, f64)>) {
    record.put("metrics_total_deals", aggregates.map(|(count, _)| count));
    // Cents: an average is shown as money.
    record.put(
        "metrics_average_deal_value",
        aggregates.map(|(_, avg)| (avg * 100.0).round() / 100.0),
    )
}
