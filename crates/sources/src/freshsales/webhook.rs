//! Freshsales workflow webhooks at the collector.
//!
//! **Authentication.** Freshsales signs nothing. The workflow's webhook
//! sends the tenant's secret in a custom header (`secret_header`, by default
//! `X-Tributary-Secret`) or as the password of its Basic authentication;
//! either is compared in constant time, before the body is read.
//!
//! **The body.** The workflow's author writes it, so only the record it
//! names is taken from it, as JSON or form-encoded, in any of these forms
//! (the first record found, deals before contacts before accounts):
//! `{"deal": {"id": ...}}`, `{"deal_id": ...}`, `deal[id]=...` or the same
//! one object deeper (`{"freshsales_webhook": {...}}`). The record is read
//! through the API by the enricher, so the rest of the body does not matter.
//! An `updated_at` next to the id dates the event and makes it the same
//! event when the workflow fires twice for one change; without it each
//! delivery is its own event, which the record's version makes harmless. An
//! `event` or `action` naming a deletion makes a delete.
//!
//! A body that names no record, or an id that is not one (a placeholder
//! left as `{{deal.id}}`), is refused with why (`400`, kept).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tributary_config::Secret;
use uuid::Uuid;

use super::{FreshsalesTenant, NAME, OBJECTS, tenant_settings};
use crate::checks::{basic_credentials, id_text};
use crate::mapped::{is_digits, tenants_by_name};
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, SourceConfigError, Violation, WebhookRequest,
    WebhookSource,
};

const PAYLOAD_VERSION: &str = "workflow";
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x2f6c_91d4_5a3e_4b07_8c1f_d6e2_a9b4_7035);
const MEDIA_TYPES: &[&str] = &["application/json", "application/x-www-form-urlencoded"];

pub struct Freshsales {
    tenants: BTreeMap<String, FreshsalesTenant>,
    no_one: Secret,
}

pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    Ok(Box::new(Freshsales::from_sections(sections)?))
}

impl Freshsales {
    pub fn from_sections(sections: Vec<(&str, &Value)>) -> Result<Self, SourceConfigError> {
        Ok(Freshsales {
            tenants: tenants_by_name(NAME, &sections, tenant_settings)?,
            no_one: Secret::new(Uuid::new_v4().to_string()),
        })
    }
}

/// The record a body names: its canonical object, its id, the body's
/// `updated_at` for it if any, and whether the body says it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRecord {
    pub object: &'static str,
    pub id: String,
    pub updated_at: Option<String>,
    pub deleted: bool,
}

/// The record `body` names (see the module's documentation), or why not.
pub fn record_named_by(body: &Map<String, Value>) -> Result<NamedRecord, Violation> {
    let mut level = body;
    for _ in 0..3 {
        if let Some(found) = named_at(level, body)? {
            return Ok(found);
        }
        // One wrapper object around the fields (e.g. {"freshsales_webhook": {...}}).
        let mut objects = level.values().filter_map(Value::as_object);
        match (objects.next(), objects.next()) {
            (Some(inner), None) => level = inner,
            _ => break,
        }
    }
    Err(Violation {
        field: "$".into(),
        reason: "names no record: send {\"deal\": {\"id\": \"{{deal.id}}\"}} (or contact, sales_account, sales_activity) or deal_id".into(),
    })
}

fn named_at(
    level: &Map<String, Value>,
    root: &Map<String, Value>,
) -> Result<Option<NamedRecord>, Violation> {
    for (name, object, _) in OBJECTS {
        let (field, id, updated_at) = match level.get(*name) {
            Some(Value::Object(record)) if record.contains_key("id") => (
                format!("{name}.id"),
                &record["id"],
                record.get("updated_at"),
            ),
            _ => match level.get(&format!("{name}_id")) {
                Some(id) => (format!("{name}_id"), id, level.get("updated_at")),
                None => continue,
            },
        };
        let id = match id_text(id) {
            Some(id) if is_digits(id.trim()) => id.trim().to_owned(),
            _ => {
                return Err(Violation {
                    field,
                    reason: format!(
                        "{} is not a record id (is the placeholder spelled {{{{{name}.id}}}}?)",
                        crate::checks::short(id)
                    ),
                });
            }
        };
        let deleted = ["event", "action", "operation"].iter().any(|key| {
            [level.get(*key), root.get(*key)]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|word| word.to_ascii_lowercase().contains("delet"))
        });
        return Ok(Some(NamedRecord {
            object,
            id,
            updated_at: updated_at
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            deleted,
        }));
    }
    Ok(None)
}

/// A form-encoded body as JSON: `deal[id]=5` becomes `{"deal": {"id": "5"}}`.
fn form_body(bytes: &[u8]) -> Map<String, Value> {
    let mut body = Map::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        let value = Value::String(value.into_owned());
        match key.split_once('[') {
            Some((outer, inner)) if inner.ends_with(']') => {
                let inner = inner.trim_end_matches(']').to_owned();
                let entry = body
                    .entry(outer.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(entry) = entry {
                    entry.insert(inner, value);
                }
            }
            _ => {
                body.insert(key.into_owned(), value);
            }
        }
    }
    body
}

fn is_form(request: &WebhookRequest<'_>) -> bool {
    request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// The event id: the same for two deliveries of one change when the body
/// dates it; otherwise each delivery's own.
fn event_id(record: &NamedRecord) -> String {
    match &record.updated_at {
        Some(updated_at) => Uuid::new_v5(
            &EVENT_NAMESPACE,
            format!(
                "{}|{}|{updated_at}|{}",
                record.object, record.id, record.deleted
            )
            .as_bytes(),
        ),
        None => Uuid::new_v4(),
    }
    .to_string()
}

impl WebhookSource for Freshsales {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    fn credentials_in_headers(&self) -> bool {
        true
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        let settings = self.tenants.get(tenant);
        let expected = settings.map_or(&self.no_one, |s| &s.secret);
        let header = settings.map_or(super::DEFAULT_SECRET_HEADER, |s| s.secret_header.as_str());
        let presented = match request.headers.get(header) {
            Some(value) => value.as_bytes().to_vec(),
            None => match request.headers.get(http::header::AUTHORIZATION) {
                Some(value) => basic_credentials(value.as_bytes())
                    .map(|(_, password)| password)
                    .ok_or(AuthFailure::InvalidBecause(
                        "Authorization is not Basic credentials".into(),
                    ))?,
                None => {
                    return Err(AuthFailure::MissingBecause(format!(
                        "no {header} header: add it to the workflow's webhook as a custom header with the tenant's secret"
                    )));
                }
            },
        };
        if expected.matches(&presented) & settings.is_some() {
            Ok(())
        } else {
            Err(AuthFailure::InvalidBecause(
                "the secret is not the tenant's".into(),
            ))
        }
    }

    fn content_types(&self) -> &'static [&'static str] {
        MEDIA_TYPES
    }

    fn split(&self, _tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let body = if is_form(request) {
            form_body(request.body)
        } else {
            match serde_json::from_slice(request.body) {
                Ok(Value::Object(body)) => body,
                Ok(_) => {
                    return Err(Refusal::Invalid(vec![Violation {
                        field: "$".into(),
                        reason: "a workflow's webhook body is a JSON object".into(),
                    }]));
                }
                Err(err) => return Err(Refusal::MalformedJson(err.to_string())),
            }
        };
        let record = record_named_by(&body).map_err(|violation| vec![violation])?;
        let occurred_at = record
            .updated_at
            .as_deref()
            .and_then(|t| tributary_model::flat::parse_time(t).ok())
            .map(|t| t.seconds() * 1_000_000)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        let keys = Prevalidated {
            event_id: event_id(&record),
            payload_version: PAYLOAD_VERSION.into(),
            object: record.object.into(),
            object_id: record.id.clone(),
            action: if record.deleted { "delete" } else { "update" }.into(),
            attempt: 1,
            occurred_at_micros: u64::try_from(occurred_at).unwrap_or_default(),
            warnings: Vec::new(),
        };
        Ok(Delivery::single(request.body.clone(), keys))
    }
}
