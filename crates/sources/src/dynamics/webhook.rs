//! Dynamics 365 deliveries at the collector.
//!
//! **Authentication.** Whatever the webhook registration chose: a webhook
//! key (the `code` query parameter), an HTTP header or a query parameter,
//! compared in constant time with the tenant's `secret`. Once authentic,
//! the context's `OrganizationId` must be the tenant's organization
//! (another's is refused with 403 and not stored).
//!
//! **Events.** A delivery is one context: one event, the whole body. Its
//! object is `PrimaryEntityName`, its id `PrimaryEntityId`, its action the
//! message (`Create`, `Update`, `Delete`, `Win`, `Lose`, ...), its time the
//! record's `modifiedon` (else the operation's time). Its id is derived from
//! what identifies one execution of the step, the same when Dataverse
//! retries it (on 502, 503 and 504). A context over 256 KB arrives without
//! its images and parameters and with `x-ms-dynamics-msg-size-exceeded`: it
//! is stored, warned `message_size_exceeded`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_config::Secret;
use uuid::Uuid;

use super::context::{self, guid, keyed, wcf_date_millis};
use super::{DynamicsTenant, NAME, tenant_settings};
use crate::mapped::tenants_by_name;
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, SourceConfigError, Violation, Warning,
    WebhookRequest, WebhookSource,
};

/// The query parameter of a "WebhookKey" registration.
pub const WEBHOOK_KEY_PARAMETER: &str = "code";
/// Set when the context was over 256 KB and lost its images and parameters.
pub const SIZE_EXCEEDED_HEADER: &str = "x-ms-dynamics-msg-size-exceeded";
const FORWARDED: &[&str] = &[
    SIZE_EXCEEDED_HEADER,
    "x-ms-dynamics-organization",
    "x-ms-dynamics-entity-name",
    "x-ms-dynamics-request-name",
    "x-ms-correlation-request-id",
];
const PAYLOAD_VERSION: &str = "remote-execution-context";
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x1c7e_4b2d_9a63_4f18_8e05_d2b9_6a4c_f731);

pub struct Dynamics {
    tenants: BTreeMap<String, DynamicsTenant>,
    no_one: Secret,
}

pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    Ok(Box::new(Dynamics::from_sections(sections)?))
}

impl Dynamics {
    pub fn from_sections(sections: Vec<(&str, &Value)>) -> Result<Self, SourceConfigError> {
        let tenants = tenants_by_name(NAME, &sections, tenant_settings)?;
        Ok(Dynamics {
            tenants,
            no_one: Secret::new(Uuid::new_v4().to_string()),
        })
    }
}

impl WebhookSource for Dynamics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        let settings = self.tenants.get(tenant);
        let (in_header, name) = settings.map_or((false, WEBHOOK_KEY_PARAMETER.to_owned()), |s| {
            s.key_location()
        });
        let presented = if in_header {
            request
                .headers
                .get(name.as_str())
                .map(|value| value.as_bytes().to_vec())
        } else {
            request.query_parameter(&name).map(String::into_bytes)
        };
        let where_ = if in_header {
            "header"
        } else {
            "query parameter"
        };
        let Some(presented) = presented else {
            return Err(AuthFailure::MissingBecause(format!(
                "no {name} {where_}: the webhook registration's key"
            )));
        };
        let expected = settings.map_or(&self.no_one, |s| &s.secret);
        if !(expected.matches(&presented) & settings.is_some()) {
            return Err(AuthFailure::InvalidBecause(format!(
                "the {name} {where_} is not the tenant's secret"
            )));
        }
        let settings = settings.expect("checked above");
        if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(request.body)
            && let Some(org) = body.get("OrganizationId").and_then(Value::as_str)
            && guid(org).as_deref() != Some(settings.organization_id.as_str())
        {
            return Err(AuthFailure::Forbidden(format!(
                "the context is from organization {org}, not this tenant's ({})",
                settings.organization_id
            )));
        }
        Ok(())
    }

    fn split(&self, _tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|err| Refusal::MalformedJson(err.to_string()))?;
        let Value::Object(body) = body else {
            return Err(Refusal::Invalid(vec![Violation {
                field: "$".into(),
                reason: "a RemoteExecutionContext is a JSON object".into(),
            }]));
        };
        let size_exceeded = request
            .headers
            .get(SIZE_EXCEEDED_HEADER)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"false"));
        let keys = prevalidate(&body, size_exceeded).map_err(Refusal::Invalid)?;
        Ok(Delivery::single(request.body.clone(), keys))
    }

    fn forwarded_headers(&self) -> &'static [&'static str] {
        FORWARDED
    }
}

/// The record's version in microseconds: its `modifiedon` in the post
/// image or the target, else the operation's time.
pub fn version_micros(body: &Map<String, Value>) -> Option<i64> {
    let image = keyed(body.get("PostEntityImages"), "PostImage").or_else(|| {
        body.get("PostEntityImages")?
            .as_array()?
            .first()?
            .get("value")
    });
    let target = keyed(body.get("InputParameters"), "Target");
    let modified = [image, target].into_iter().flatten().find_map(|entity| {
        let attributes = context::attributes(entity);
        attributes
            .get("modifiedon")
            .and_then(Value::as_str)
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|t| t.timestamp_micros())
    });
    modified.or_else(|| {
        body.get("OperationCreatedOn")
            .and_then(Value::as_str)
            .and_then(wcf_date_millis)
            .and_then(|ms| ms.checked_mul(1000))
    })
}

fn prevalidate(
    body: &Map<String, Value>,
    size_exceeded: bool,
) -> Result<Prevalidated, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut text = |field: &str| -> Option<String> {
        match body.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                violations.push(Violation {
                    field: field.into(),
                    reason: format!("expected text, got {}", crate::checks::kind(other)),
                });
                None
            }
            None => {
                violations.push(Violation {
                    field: field.into(),
                    reason: "missing".into(),
                });
                None
            }
        }
    };
    let message = text("MessageName");
    let entity = text("PrimaryEntityName");
    let entity_id = text("PrimaryEntityId");
    let org = text("OrganizationId");
    let ids: Vec<String> = [
        "CorrelationId",
        "RequestId",
        "OperationId",
        "OperationCreatedOn",
    ]
    .iter()
    .map(|field| {
        body.get(*field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    })
    .collect();
    let entity_id = entity_id.and_then(|id| match guid(&id) {
        Some(id) => Some(id),
        None => {
            violations.push(Violation {
                field: "PrimaryEntityId".into(),
                reason: format!("{id:?} is not a GUID"),
            });
            None
        }
    });
    let org = org.and_then(|org| match guid(&org) {
        Some(org) => Some(org),
        None => {
            violations.push(Violation {
                field: "OrganizationId".into(),
                reason: format!("{org:?} is not a GUID"),
            });
            None
        }
    });
    if let Some(parameters) = body.get("InputParameters")
        && !parameters.is_array()
    {
        violations.push(Violation {
            field: "InputParameters".into(),
            reason: "expected a list of {key, value}".into(),
        });
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    let (message, entity, entity_id, org) = (
        message.unwrap_or_default(),
        entity.unwrap_or_default(),
        entity_id.unwrap_or_default(),
        org.unwrap_or_default(),
    );
    let stage = body.get("Stage").map(Value::to_string).unwrap_or_default();
    let depth = body.get("Depth").map(Value::to_string).unwrap_or_default();
    let identity = [
        org.as_str(),
        &ids[0],
        &ids[1],
        &ids[2],
        &ids[3],
        &message,
        &entity,
        &entity_id,
        &stage,
        &depth,
    ]
    .join("|");
    let mut warnings = Vec::new();
    if size_exceeded {
        warnings.push(Warning {
            code: "message_size_exceeded",
            field: SIZE_EXCEEDED_HEADER.into(),
            message: "the context was over 256 KB: Dataverse dropped its images and parameters"
                .into(),
        });
    }
    let occurred = version_micros(body);
    if occurred.is_none() {
        warnings.push(Warning {
            code: "no_modification_time",
            field: "OperationCreatedOn".into(),
            message: "neither the record's modifiedon nor the operation's time: ordered by receipt"
                .into(),
        });
    }
    Ok(Prevalidated {
        event_id: Uuid::new_v5(&EVENT_NAMESPACE, identity.as_bytes()).to_string(),
        payload_version: PAYLOAD_VERSION.into(),
        object: entity.to_ascii_lowercase(),
        object_id: entity_id,
        action: message,
        attempt: 1,
        occurred_at_micros: occurred.and_then(|m| u64::try_from(m).ok()).unwrap_or(0),
        warnings,
    })
}
