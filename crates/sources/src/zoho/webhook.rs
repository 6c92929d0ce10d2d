//! Zoho CRM notifications at the collector.
//!
//! **Authentication.** Zoho does not sign notifications: each echoes the
//! `token` its channel was created with, compared in constant time with the
//! tenant's, and names its `channel_id`, which must be one of the tenant's
//! channels.
//!
//! **Events.** A notification lists the ids of the records one operation
//! touched (`insert`, `update`, `delete`); each id becomes its own event,
//! carrying the whole notification (the enricher picks that record's
//! `affected_values`). Ids are kept as the digits Zoho sent: they are 19
//! digits long and must never pass through a floating-point number. The
//! time is Zoho's `server_time`. A module the dashboards do not use, an
//! unknown operation or an id that is not one is refused (`400`, kept).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_config::Secret;
use uuid::Uuid;

use super::{NAME, ZohoTenant, object_of_module, tenant_settings};
use crate::checks::id_text;
use crate::mapped::tenants_by_name;
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, SourceConfigError, SplitEvent, Violation,
    WebhookRequest, WebhookSource,
};

const PAYLOAD_VERSION: &str = "notification";
const OPERATIONS: &[&str] = &["insert", "update", "delete"];
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x58d1_3e9a_27b4_4c6f_9a08_e1f3_6b2d_c475);

pub struct Zoho {
    tenants: BTreeMap<String, ZohoTenant>,
    no_one: Secret,
}

pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    Ok(Box::new(Zoho::from_sections(sections)?))
}

impl Zoho {
    pub fn from_sections(sections: Vec<(&str, &Value)>) -> Result<Self, SourceConfigError> {
        let tenants = tenants_by_name(NAME, &sections, tenant_settings)?;
        Ok(Zoho {
            tenants,
            no_one: Secret::new(Uuid::new_v4().to_string()),
        })
    }
}

/// The event id of one record of one notification: the same when Zoho
/// sends the notification again.
pub fn notification_event_id(
    channel: &str,
    server_time: &str,
    module: &str,
    operation: &str,
    id: &str,
) -> String {
    Uuid::new_v5(
        &EVENT_NAMESPACE,
        format!("{channel}|{server_time}|{module}|{operation}|{id}").as_bytes(),
    )
    .to_string()
}

impl WebhookSource for Zoho {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        let settings = self.tenants.get(tenant);
        // Unreadable bodies are refused by `split`, with why; they carry no token.
        let body: Map<String, Value> = match serde_json::from_slice(request.body) {
            Ok(Value::Object(body)) => body,
            _ => {
                return Err(AuthFailure::MissingBecause(
                    "no token: the body is not a Zoho notification".into(),
                ));
            }
        };
        let Some(token) = body.get("token").and_then(Value::as_str) else {
            return Err(AuthFailure::MissingBecause(
                "no token: create the channel with the tenant's token".into(),
            ));
        };
        let expected = settings.map_or(&self.no_one, |s| &s.token);
        if !(expected.matches(token.as_bytes()) & settings.is_some()) {
            return Err(AuthFailure::InvalidBecause(
                "the token is not the one the tenant's channels were created with".into(),
            ));
        }
        let settings = settings.expect("checked above");
        let channel = body.get("channel_id").and_then(id_text);
        match channel {
            Some(channel) if settings.channels().contains(&channel) => Ok(()),
            Some(channel) => Err(AuthFailure::Forbidden(format!(
                "channel {channel} is not one of the tenant's channel_ids"
            ))),
            None => Err(AuthFailure::Forbidden(
                "the notification names no channel_id".into(),
            )),
        }
    }

    fn split(&self, _tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|err| Refusal::MalformedJson(err.to_string()))?;
        let Value::Object(body) = body else {
            return Err(Refusal::Invalid(vec![Violation {
                field: "$".into(),
                reason: "a notification is a JSON object".into(),
            }]));
        };
        let mut violations = Vec::new();
        let mut violation = |field: &str, reason: String| {
            violations.push(Violation {
                field: field.into(),
                reason,
            })
        };
        let module = body
            .get("module")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = object_of_module(module);
        if object.is_none() {
            violation(
                "module",
                format!("{module:?} is not a module Tributary takes (Deals, Accounts, Contacts)"),
            );
        }
        let operation = body
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !OPERATIONS.contains(&operation) {
            violation(
                "operation",
                format!("{operation:?} is not insert, update or delete"),
            );
        }
        let server_time = match body.get("server_time") {
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            other => {
                violation(
                    "server_time",
                    format!("expected epoch milliseconds, got {other:?}"),
                );
                None
            }
        };
        let ids: Vec<String> = match body.get("ids").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .enumerate()
                .filter_map(|(index, id)| match id_text(id) {
                    Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => Some(id),
                    _ => {
                        violation(&format!("ids[{index}]"), format!("{id} is not a record id"));
                        None
                    }
                })
                .collect(),
            _ => {
                violation("ids", "expected a non-empty list of record ids".into());
                Vec::new()
            }
        };
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        let channel = body.get("channel_id").and_then(id_text).unwrap_or_default();
        let server_time = server_time.unwrap_or_default();
        let object = object.unwrap_or_default();
        let mut delivery = Delivery::default();
        for id in ids {
            delivery.events.push(SplitEvent {
                body: request.body.clone(),
                keys: Prevalidated {
                    event_id: notification_event_id(
                        &channel,
                        &server_time.to_string(),
                        module,
                        operation,
                        &id,
                    ),
                    payload_version: PAYLOAD_VERSION.into(),
                    object: object.into(),
                    object_id: id,
                    action: operation.into(),
                    attempt: 1,
                    occurred_at_micros: server_time.saturating_mul(1000),
                    warnings: Vec::new(),
                },
            });
        }
        Ok(delivery)
    }
}
