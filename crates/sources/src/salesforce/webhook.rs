//! Salesforce Outbound Messages at the collector.
//!
//! **Authentication.** Salesforce does not sign Outbound Messages, so two
//! checks stand in for a signature: the endpoint URL carries the tenant's
//! secret (`?secret=...`, compared in constant time), and the message's
//! `OrganizationId` must be the tenant's org (another org's message is
//! refused with 403 and not stored).
//!
//! **Events.** Each `<Notification>` becomes its own event (its exact bytes),
//! identified by the org and the notification id: Salesforce delivers at
//! least once for 24 hours and a retry repeats the ids. A notification that
//! breaks the rules is left out (the collector keeps it on the dead-letter
//! topic) while the others are stored. XML that is not an Outbound Message
//! is refused whole (400, kept for an operator).
//!
//! **Answers.** Once every notification is stored, the SOAP acknowledgement
//! (`<Ack>true</Ack>`); Salesforce retries anything else. Refusals are SOAP
//! faults with the collector's status.

use std::collections::BTreeMap;

use serde_json::Value;
use tributary_config::Secret;
use uuid::Uuid;

use super::outbound::{self, Notification, read_message};
use super::{NAME, SalesforceTenant, id_18, same_id, tenant_settings};
use crate::mapped::tenants_by_name;
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, RefusalReply, RejectedElement, Reply,
    SourceConfigError, SplitEvent, Violation, Warning, WebhookRequest, WebhookSource,
};

/// `payload_version` of an Outbound Message's events.
pub const PAYLOAD_VERSION_OUTBOUND: &str = "outbound-message";
/// The query parameter of the endpoint URL that carries the tenant's secret.
pub const ENDPOINT_SECRET_PARAMETER: &str = "secret";
/// What the `action` of a notification is: Outbound Messages say only that
/// the record now has these values, not what changed.
const ACTION: &str = "notified";
/// SOAP 1.1 is `text/xml`; `application/xml` is taken too.
const MEDIA_TYPES: &[&str] = &["text/xml", "application/xml"];
const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_92a4_3c58_4e07_b2a9_5d18_e7c4_0b63);

/// The Salesforce source.
pub struct Salesforce {
    tenants: BTreeMap<String, SalesforceTenant>,
    /// What an unknown tenant's secret is checked against, so it fails as a
    /// wrong secret does, in the same time.
    no_one: Secret,
}

/// Builds the source from every tenant's `[tenants.<tenant>.salesforce]` section.
pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    Ok(Box::new(Salesforce::from_sections(sections)?))
}

impl Salesforce {
    pub fn from_sections(sections: Vec<(&str, &Value)>) -> Result<Self, SourceConfigError> {
        let tenants = tenants_by_name(NAME, &sections, tenant_settings)?;
        Ok(Salesforce {
            tenants,
            no_one: Secret::new(Uuid::new_v4().to_string()),
        })
    }
}

/// The event id of a notification: the same on every delivery of it.
pub fn notification_event_id(organization_id: &str, notification_id: &str) -> String {
    Uuid::new_v5(
        &NOTIFICATION_NAMESPACE,
        format!("{organization_id}:{notification_id}").as_bytes(),
    )
    .to_string()
}

impl WebhookSource for Salesforce {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        let settings = self.tenants.get(tenant);
        let expected = settings.map_or(&self.no_one, |s| &s.endpoint_secret);
        let Some(presented) = request.query_parameter(ENDPOINT_SECRET_PARAMETER) else {
            return Err(AuthFailure::MissingBecause(format!(
                "the endpoint URL carries no ?{ENDPOINT_SECRET_PARAMETER}=: add the tenant's endpoint_secret to the Outbound Message's endpoint URL"
            )));
        };
        if !(expected.matches(presented.as_bytes()) & settings.is_some()) {
            return Err(AuthFailure::InvalidBecause(format!(
                "the endpoint URL's {ENDPOINT_SECRET_PARAMETER} is not the tenant's endpoint_secret"
            )));
        }
        let settings = settings.expect("checked above");
        // A message that cannot be read is refused by `split`, with why.
        if let Ok(message) = read_message(request.body)
            && let Some(org) = message.organization_id
            && !same_id(&org, &settings.organization_id)
        {
            return Err(AuthFailure::Forbidden(format!(
                "the message is from org {org}, not this tenant's ({})",
                settings.organization_id
            )));
        }
        Ok(())
    }

    fn content_types(&self) -> &'static [&'static str] {
        MEDIA_TYPES
    }

    fn split(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let message = read_message(request.body).map_err(Refusal::MalformedXml)?;
        let organization_id = match message.organization_id.as_deref().and_then(id_18) {
            Some(org) => org,
            None => {
                return Err(Refusal::Invalid(vec![Violation {
                    field: "notifications.OrganizationId".into(),
                    reason: match &message.organization_id {
                        Some(org) => format!("{org:?} is not an org id"),
                        None => "missing".into(),
                    },
                }]));
            }
        };
        if message.notifications.is_empty() {
            return Err(Refusal::Invalid(vec![Violation {
                field: "notifications.Notification".into(),
                reason: "the message holds no notification".into(),
            }]));
        }
        let _ = tenant;
        let mut delivery = Delivery::default();
        for (index, notification) in message.notifications.iter().enumerate() {
            let body = request.body.slice(notification.span.clone());
            let (keys, violations) = prevalidate(&organization_id, index, notification);
            if violations.is_empty() {
                delivery.events.push(SplitEvent { body, keys });
            } else {
                delivery.rejected.push(RejectedElement {
                    index,
                    body,
                    violations,
                    keys,
                });
            }
        }
        Ok(delivery)
    }

    fn acknowledge(&self, _tenant: &str, _delivery: &Delivery) -> Option<Reply> {
        Some(Reply {
            status: 200,
            headers: vec![("content-type".into(), XML_CONTENT_TYPE.into())],
            body: outbound::acknowledgement(),
        })
    }

    fn refusal_reply(&self, refusal: &RefusalReply<'_>) -> Option<Reply> {
        let mut message = refusal.message.to_owned();
        for violation in refusal.violations {
            message.push_str(&format!("; {}: {}", violation.field, violation.reason));
        }
        Some(Reply {
            status: refusal.status,
            headers: vec![("content-type".into(), XML_CONTENT_TYPE.into())],
            body: outbound::fault(refusal.status < 500, refusal.code, &message),
        })
    }
}

/// A notification's keys (what could be read of them) and what is wrong
/// with it: nothing, for a notification to store.
fn prevalidate(
    organization_id: &str,
    index: usize,
    notification: &Notification,
) -> (Prevalidated, Vec<Violation>) {
    let at = |field: &str| format!("notifications.Notification[{index}].{field}");
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    let mut keys = Prevalidated {
        payload_version: PAYLOAD_VERSION_OUTBOUND.into(),
        action: ACTION.into(),
        attempt: 1,
        ..Prevalidated::default()
    };
    match notification.id.as_deref().and_then(id_18) {
        Some(id) => keys.event_id = notification_event_id(organization_id, &id),
        None => violations.push(Violation {
            field: at("Id"),
            reason: match &notification.id {
                Some(id) => format!("{id:?} is not a notification id"),
                None => "missing".into(),
            },
        }),
    }
    match notification.object_type.as_deref() {
        Some(object) if !object.is_empty() => keys.object = object.to_ascii_lowercase(),
        _ => violations.push(Violation {
            field: at("sObject"),
            reason: "missing, or without its xsi:type (the record's object)".into(),
        }),
    }
    match notification.field("Id").and_then(id_18) {
        Some(id) => keys.object_id = id,
        None => violations.push(Violation {
            field: at("sObject.Id"),
            reason: match notification.field("Id") {
                Some(id) => format!("{id:?} is not a record id"),
                None => "missing".into(),
            },
        }),
    }
    let modified = ["LastModifiedDate", "SystemModstamp"]
        .iter()
        .find_map(|field| notification.field(field).map(|value| (*field, value)));
    match modified {
        Some((field, value)) => match chrono::DateTime::parse_from_rfc3339(value) {
            Ok(time) => {
                keys.occurred_at_micros = u64::try_from(time.timestamp_micros()).unwrap_or(0);
            }
            Err(err) => violations.push(Violation {
                field: at(&format!("sObject.{field}")),
                reason: format!("{value:?} is not a date-time: {err}"),
            }),
        },
        None => warnings.push(Warning {
            code: "no_modification_time",
            field: at("sObject"),
            message: "neither LastModifiedDate nor SystemModstamp is selected in the Outbound Message: events of one record cannot be ordered by Salesforce's time".into(),
        }),
    }
    keys.warnings = warnings;
    (keys, violations)
}
