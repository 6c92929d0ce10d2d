//! HubSpot's events as the enricher turns them into flat `hubspot-crm`
//! events: completely enriched, hydrated from the portal as the event's
//! change left it (the record with its stage history, associations,
//! pipeline, owner and custom properties). The contract of each field is
//! the enriched topic's, for HubSpot.

use serde_json::{Map, Value, json};
use tributary_fake_apis::hubspot::{
    CrmObject, HubSpotPortal, ObjectType, PropertyDefinition, association_type, iso_millis,
};

use super::HubSpotEvent;
use crate::model::Tenant;

/// A property's value as HubSpot sent it, or null.
fn property(object: &CrmObject, name: &str) -> Value {
    object
        .value(name)
        .map_or(Value::Null, |v| Value::String(v.to_owned()))
}

/// The records of `to` associated with a record: the primary one first
/// (a labeled association), then the others as the API lists them.
fn associated(portal: &HubSpotPortal, from: (ObjectType, u64), to: ObjectType) -> Vec<u64> {
    let mut found: Vec<(bool, u64)> = portal
        .associated(from, to)
        .into_iter()
        .map(|(id, types)| {
            let primary = types
                .iter()
                .any(|t| association_type(*t).is_some_and(|t| t.label.is_some()));
            (!primary, id)
        })
        .collect();
    found.sort_by_key(|(not_primary, _)| *not_primary);
    found.into_iter().map(|(_, id)| id).collect()
}

fn first(ids: &[u64]) -> Value {
    ids.first().map_or(Value::Null, |id| json!(id.to_string()))
}

fn put(event: &mut Map<String, Value>, fields: Value) {
    if let Value::Object(fields) = fields {
        event.extend(fields);
    }
}

/// `owner_name` and `owner_email` of the record's owner.
fn owner(portal: &HubSpotPortal, object: &CrmObject) -> Value {
    let owner = object
        .value("hubspot_owner_id")
        .and_then(|id| portal.owners.iter().find(|o| o.id == id));
    json!({
        "owner_name": owner.map(|o| format!("{} {}", o.first_name, o.last_name)),
        "owner_email": owner.map(|o| o.email.clone()),
    })
}

/// `custom_<property>` for each of the portal's own properties of the type,
/// and their definitions (`custom_field_*`), as the enricher writes them.
fn custom(portal: &HubSpotPortal, object_type: ObjectType, object: &CrmObject) -> Value {
    let definitions: Vec<_> = portal
        .properties
        .get(&object_type)
        .into_iter()
        .flatten()
        .filter(|d| !d.hubspot_defined && !d.archived)
        .collect();
    let mut fields: Map<String, Value> = definitions
        .iter()
        .map(|d| (format!("custom_{}", d.name), property(object, &d.name)))
        .collect();
    let column = |f: &dyn Fn(&&PropertyDefinition) -> String| -> Value {
        json!(definitions.iter().map(f).collect::<Vec<_>>())
    };
    fields.insert("custom_field_names".into(), column(&|d| d.name.clone()));
    fields.insert("custom_field_labels".into(), column(&|d| d.label.clone()));
    fields.insert(
        "custom_field_types".into(),
        column(&|d| d.property_type.clone()),
    );
    let options: Vec<String> = definitions
        .iter()
        .flat_map(|d| {
            d.options
                .iter()
                .map(move |o| format!("{}\t{}\t{}", d.name, o.value, o.label))
        })
        .collect();
    fields.insert("custom_field_options".into(), json!(options));
    Value::Object(fields)
}

fn company_fields(company: Option<&CrmObject>) -> Value {
    let field = |name: &str| company.map_or(Value::Null, |c| property(c, name));
    json!({
        "company_name": field("name"),
        "company_domain": field("domain"),
        "company_industry": field("industry"),
        "company_size": field("numberofemployees"),
        "company_owner_id": field("hubspot_owner_id"),
    })
}

fn deal_fields(portal: &HubSpotPortal, deal: &CrmObject, tenant: &Tenant) -> Value {
    let record = (ObjectType::Deals, deal.id);
    let companies = associated(portal, record, ObjectType::Companies);
    let contacts = associated(portal, record, ObjectType::Contacts);
    let source_property = tenant
        .hubspot()
        .expect("a HubSpot tenant")
        .marketing_source_property;
    let marketing_source = deal.value(source_property).and_then(|value| {
        portal
            .properties
            .get(&ObjectType::Deals)?
            .iter()
            .find(|d| d.name == source_property)?
            .options
            .iter()
            .find(|o| o.value == value)
            .map(|o| o.label.clone())
    });
    // Oldest first, as the mapping reads a history.
    let history: Vec<_> = deal
        .history
        .get("dealstage")
        .into_iter()
        .flatten()
        .rev()
        .collect();
    let pipeline = deal
        .value("pipeline")
        .and_then(|id| portal.deal_pipelines.iter().find(|p| p.id == id));
    let stages: Vec<_> = pipeline
        .into_iter()
        .flat_map(|p| &p.stages)
        .filter(|s| !s.archived)
        .collect();
    let company = companies
        .first()
        .and_then(|id| portal.object(ObjectType::Companies, *id));
    let mut fields = json!({
        "deal_name": property(deal, "dealname"),
        "deal_amount": property(deal, "amount"),
        "deal_currency": property(deal, "deal_currency_code"),
        "deal_pipeline_id": property(deal, "pipeline"),
        "deal_stage_id": property(deal, "dealstage"),
        "deal_close_date": property(deal, "closedate"),
        "deal_create_date": property(deal, "createdate"),
        "deal_is_closed": property(deal, "hs_is_closed"),
        "deal_is_closed_won": property(deal, "hs_is_closed_won"),
        "deal_closed_lost_reason": property(deal, "closed_lost_reason"),
        "deal_owner_id": property(deal, "hubspot_owner_id"),
        "deal_marketing_source": marketing_source,
        "deal_company_id": first(&companies),
        "deal_contact_id": first(&contacts),
        "deal_stage_history_ids": history.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        "deal_stage_history_times": history.iter().map(|v| iso_millis(v.timestamp_ms)).collect::<Vec<_>>(),
        "deal_stage_history_sources": history.iter().map(|v| v.source.source_type.clone()).collect::<Vec<_>>(),
        "deal_pipeline_name": pipeline.map(|p| p.label.clone()),
        "deal_pipeline_order": pipeline.map(|p| p.display_order),
        "deal_pipeline_stage_ids": stages.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "deal_pipeline_stage_names": stages.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
        "deal_pipeline_stage_orders": stages.iter().map(|s| s.display_order.to_string()).collect::<Vec<_>>(),
        "deal_pipeline_stage_probabilities": stages.iter().map(|s| format!("{:?}", s.probability)).collect::<Vec<_>>(),
        "deal_pipeline_stage_outcomes": stages.iter().map(|s| match (s.is_closed, s.probability) {
            (true, p) if p >= 1.0 => "won",
            (true, _) => "lost",
            (false, _) => "open",
        }).collect::<Vec<_>>(),
    });
    if let Value::Object(map) = &mut fields {
        put(map, company_fields(company));
        put(map, owner(portal, deal));
        put(map, custom(portal, ObjectType::Deals, deal));
    }
    fields
}

fn contact_fields(portal: &HubSpotPortal, contact: &CrmObject) -> Value {
    let company = contact
        .value("associatedcompanyid")
        .filter(|v| !v.is_empty())
        .map(|v| json!(v))
        .unwrap_or_else(|| {
            first(&associated(
                portal,
                (ObjectType::Contacts, contact.id),
                ObjectType::Companies,
            ))
        });
    let mut fields = json!({
        "contact_first_name": property(contact, "firstname"),
        "contact_last_name": property(contact, "lastname"),
        "contact_email": property(contact, "email"),
        "contact_phone_number": property(contact, "phone"),
        "contact_position": property(contact, "jobtitle"),
        "contact_company_id": company,
        "contact_owner_id": property(contact, "hubspot_owner_id"),
        "contact_lifecycle_stage": property(contact, "lifecyclestage"),
        "contact_lead_status": property(contact, "hs_lead_status"),
    });
    if let Value::Object(map) = &mut fields {
        put(map, owner(portal, contact));
        put(map, custom(portal, ObjectType::Contacts, contact));
    }
    fields
}

fn company_record_fields(portal: &HubSpotPortal, company: &CrmObject) -> Value {
    let mut fields = company_fields(Some(company));
    if let Value::Object(map) = &mut fields {
        put(map, owner(portal, company));
        put(map, custom(portal, ObjectType::Companies, company));
    }
    fields
}

fn activity_fields(portal: &HubSpotPortal, object_type: ObjectType, activity: &CrmObject) -> Value {
    let names = super::engagement_properties(object_type);
    let record = (object_type, activity.id);
    let mut fields = json!({
        "activity_type": object_type.singular(),
        "activity_subject": property(activity, names.title),
        "activity_timestamp": property(activity, "hs_timestamp"),
        "activity_status": property(activity, names.status),
        "activity_completed_at": if object_type == ObjectType::Tasks {
            property(activity, "hs_task_completion_date")
        } else {
            Value::Null
        },
        "activity_direction": names.direction.map_or(Value::Null, |d| property(activity, d)),
        "activity_owner_id": property(activity, "hubspot_owner_id"),
        "activity_deal_id": first(&associated(portal, record, ObjectType::Deals)),
        "activity_contact_id": first(&associated(portal, record, ObjectType::Contacts)),
        "activity_company_id": first(&associated(portal, record, ObjectType::Companies)),
    });
    if let Value::Object(map) = &mut fields {
        put(map, owner(portal, activity));
        put(map, custom(portal, object_type, activity));
    }
    fields
}

/// The flat enriched event of `event`, hydrated from `portal` as its change left it.
pub(crate) fn enriched_event(
    tenant: &Tenant,
    portal: &HubSpotPortal,
    event: &HubSpotEvent,
) -> Value {
    let account = tenant.hubspot().expect("a HubSpot tenant");
    let micro = event.occurred_at_ms * 1_000;
    let mut out = Map::new();
    let merge = event.action == "merge";
    put(
        &mut out,
        json!({
            "pipeline_event_id": format!("hubspot-{}-{}", account.portal_id, event.event_id),
            "pipeline_tenant": tenant.name,
            "pipeline_source": "hubspot",
            "pipeline_payload_version": "webhooks-v3",
            "pipeline_received_at_micro": micro + 1_000,
            "pipeline_enriched_at_micro": micro + 2_000,
            "pipeline_warnings": [],
            "pipeline_enrichment_status": "complete",
            "pipeline_enrichment_missing": [],
            "event_id": event.event_id.to_string(),
            "event_object": event.object_type.singular(),
            "event_action": event.action,
            "event_subscription_type": event.subscription_type(),
            "event_object_id": event.object_id.to_string(),
            "event_portal_id": account.portal_id,
            "event_occurred_at": event.occurred_at_ms,
            "event_timestamp_micro": micro,
            "event_property_name": event.property.as_ref().map(|(name, _)| name),
            "event_property_value": event.property.as_ref().map(|(_, value)| value),
            "event_change_source": event.change_source,
            "event_source_id": event.source_id,
            "event_attempt_number": 0,
            "event_primary_object_id": merge.then(|| event.object_id.to_string()),
            "event_merged_object_ids": event.merged_object_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
            "event_new_object_id": merge.then(|| event.object_id.to_string()),
        }),
    );
    // What the API answers for the record: archived ones too (the enricher
    // reads a record a plain read misses among the archived); a merged id
    // reads as the record that absorbed it.
    let record = portal.resolve(event.object_type, event.object_id);
    let Some(record) = record else {
        put(
            &mut out,
            json!({
                "record_found": false, "record_id": null, "record_archived": null,
                "record_created_at": null, "record_updated_at": null, "record_archived_at": null,
                "record_version_micro": null,
            }),
        );
        return Value::Object(out);
    };
    let version_ms = record
        .updated_at_ms
        .max(record.archived_at_ms.unwrap_or(i64::MIN));
    put(
        &mut out,
        json!({
            "record_found": true,
            "record_id": record.id.to_string(),
            "record_archived": record.archived(),
            "record_created_at": iso_millis(record.created_at_ms),
            "record_updated_at": iso_millis(record.updated_at_ms),
            "record_archived_at": record.archived_at_ms.map(iso_millis),
            "record_version_micro": version_ms * 1_000,
        }),
    );
    let fields = match event.object_type {
        ObjectType::Deals => deal_fields(portal, record, tenant),
        ObjectType::Contacts => contact_fields(portal, record),
        ObjectType::Companies => company_record_fields(portal, record),
        other => activity_fields(portal, other, record),
    };
    put(&mut out, fields);
    Value::Object(out)
}
