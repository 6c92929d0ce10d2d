//! Pipedrive webhooks v1 and v2 at the collector.
//!
//! Pipedrive signs nothing; a webhook can carry HTTP Basic credentials
//! (`http_auth_user` / `http_auth_password` when it is created), which are
//! required here. There is no subscription handshake.
//!
//! Prevalidation checks the `meta` block of both payload versions and that
//! the object snapshots agree with the action. What Pipedrive documents as
//! always present but a delivery lacks is a warning, not a rejection, as are
//! states later stages must know about but that are not errors:
//! `trans_pending: true` (commit pending), bulk edits, imports by a Pipedrive
//! service, redeliveries, merges.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::Value;
use tributary_config::Secret;
use uuid::Uuid;

use super::{NAME, PipedriveTenant, tenant_settings};
use crate::checks::{
    Body, BodyError, Checks, Obj, Presence, Skimmed, id_text, kind, read_object, short,
};
use crate::{
    AuthFailure, Delivery, Prevalidated, Refusal, SourceConfigError, Violation, WebhookRequest,
    WebhookSource,
};

/// v1 `meta.action` values.
pub const V1_ACTIONS: &[&str] = &["added", "updated", "deleted", "merged"];
/// v1 `meta.object` values.
pub const V1_OBJECTS: &[&str] = &[
    "activity",
    "activityType",
    "deal",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
];
/// v2 `meta.action` values.
pub const V2_ACTIONS: &[&str] = &["create", "change", "delete"];
/// v2 entities documented today; others are accepted with a warning, as
/// Pipedrive adds entities to v2 over time.
pub const V2_ENTITIES: &[&str] = &[
    "activity",
    "deal",
    "deal_installment",
    "deal_product",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "project",
    "stage",
    "task",
    "user",
];
const CHANGE_SOURCES: &[&str] = &["app", "api"];
const V2_TYPES: &[&str] = &["general", "application"];

/// Namespace of the derived (UUID v5) event ids of v1 deliveries, which carry no event id.
const V1_EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a9e_4d8b_4c3e_9a7f_2b1d_0e8c_4a61);

/// The Pipedrive source.
pub struct Pipedrive {
    tenants: BTreeMap<String, PipedriveTenant>,
    /// What an unknown tenant's credentials are checked against: random,
    /// so they fail as wrong ones do, with the same answer and work.
    no_one: Secret,
}

/// Builds the source from every tenant's `[tenants.<tenant>.pipedrive]` section.
pub fn build(sections: Vec<(&str, &Value)>) -> Result<Box<dyn WebhookSource>, SourceConfigError> {
    let mut tenants = BTreeMap::new();
    for (tenant, section) in sections {
        let invalid = |reason: String| SourceConfigError::Tenant {
            tenant: tenant.to_owned(),
            source_name: NAME,
            reason,
        };
        let settings = tenant_settings(section).map_err(invalid)?;
        tenants.insert(tenant.to_owned(), settings);
    }
    Ok(Box::new(Pipedrive {
        tenants,
        no_one: Secret::new(Uuid::new_v4().to_string()),
    }))
}

impl WebhookSource for Pipedrive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    /// Basic auth: checked before the body is read.
    fn credentials_in_headers(&self) -> bool {
        true
    }

    fn authenticate(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
        let header = request
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthFailure::Missing)?;
        let (user, password) =
            crate::checks::basic_credentials(header.as_bytes()).ok_or(AuthFailure::Invalid)?;
        let (username, expected_password) = match self.tenants.get(tenant) {
            Some(settings) => (Secret::new(settings.username.as_str()), &settings.password),
            None => (self.no_one.clone(), &self.no_one),
        };
        // Evaluate both comparisons so timing does not reveal which one failed.
        let user_ok = username.matches(&user);
        let password_ok = expected_password.matches(&password);
        if user_ok & password_ok & self.tenants.contains_key(tenant) {
            Ok(())
        } else {
            Err(AuthFailure::Invalid)
        }
    }

    /// A Pipedrive delivery is one event: the whole body.
    fn split(&self, tenant: &str, request: &WebhookRequest<'_>) -> Result<Delivery, Refusal> {
        let keys = prevalidate(tenant, request.body)?;
        Ok(Delivery::single(request.body.clone(), keys))
    }
}

/// Which payload format a body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadVersion {
    V1,
    V2,
}

/// Tells v1 from v2 by the `meta` block: v2 has `meta.version`, v1 `meta.v`.
pub fn payload_version(
    meta: &serde_json::Map<String, Value>,
    root: &serde_json::Map<String, Value>,
) -> Option<PayloadVersion> {
    if meta.contains_key("version") {
        Some(PayloadVersion::V2)
    } else if meta.contains_key("v") || root.contains_key("v") {
        Some(PayloadVersion::V1)
    } else {
        None
    }
}

/// The object snapshots of both payload versions: large, so only skimmed.
const SNAPSHOTS: &[&str] = &["current", "previous", "data"];

/// Prevalidates a Pipedrive webhook body of either version.
pub fn prevalidate(tenant: &str, bytes: &[u8]) -> Result<Prevalidated, Refusal> {
    let body = match read_object(bytes, SNAPSHOTS) {
        Ok(body) => body,
        Err(BodyError::Malformed(message)) => return Err(Refusal::MalformedJson(message)),
        Err(BodyError::NotAnObject(kind)) => {
            return Err(Refusal::Invalid(vec![Violation {
                field: "$".into(),
                reason: format!("the body must be a JSON object, got {kind}"),
            }]));
        }
    };
    let root = Obj::root(&body.small);
    let mut checks = Checks::default();
    let Some(meta) = checks.object(&root, "meta", Presence::Required) else {
        return Err(checks.finish().err().unwrap_or_default().into());
    };
    let outcome = match payload_version(meta.map, &body.small) {
        Some(PayloadVersion::V1) => prevalidate_v1(tenant, &root, &meta, &body, checks),
        Some(PayloadVersion::V2) => prevalidate_v2(&meta, &body, checks),
        None => Err(vec![Violation {
            field: "meta".into(),
            reason: "neither meta.v (webhooks v1) nor meta.version (webhooks v2) is present".into(),
        }]),
    };
    outcome.map_err(Refusal::Invalid)
}

fn prevalidate_v1(
    tenant: &str,
    root: &Obj<'_>,
    meta: &Obj<'_>,
    body: &Body,
    mut checks: Checks,
) -> Result<Prevalidated, Vec<Violation>> {
    use Presence::{Expected, Optional, Required};

    // Version: `meta.v` and the top-level `v` are both 1 when present.
    for (object, presence) in [(meta, Required), (root, Optional)] {
        if let Some(v) = checks.field(object, "v", presence)
            && v.as_i64() != Some(1)
        {
            checks.violation(
                object.path("v"),
                format!("must be 1 for webhooks v1, got {}", short(v)),
            );
        }
    }
    let action = checks.one_of(meta, "action", Required, V1_ACTIONS);
    let object = checks.one_of(meta, "object", Required, V1_OBJECTS);
    let id = checks.integer(meta, "id", Required, 1, i64::MAX);
    checks.integer(meta, "company_id", Required, 1, i64::MAX);
    checks.integer(meta, "user_id", Required, 1, i64::MAX);
    let timestamp = checks.digits(meta, "timestamp", Required, 10);
    let timestamp_micro = checks.digits(meta, "timestamp_micro", Required, 16);
    let webhook_id = checks.id(meta, "webhook_id", Required);
    checks.string(meta, "host", Expected);
    checks.one_of(meta, "change_source", Expected, CHANGE_SOURCES);
    checks.id_array(meta, "permitted_user_ids", Expected);
    checks.integer(meta, "prepublish_timestamp", Optional, 0, i64::MAX);
    if checks.boolean(meta, "trans_pending", Expected) == Some(true) {
        checks.warning(
            "transaction_pending",
            meta.path("trans_pending"),
            "Pipedrive sent this before its database transaction committed; the change may still be rolled back",
        );
    }
    if checks.boolean(meta, "is_bulk_update", Expected) == Some(true) {
        checks.warning(
            "bulk_update",
            meta.path("is_bulk_update"),
            "part of a bulk update from a list view",
        );
    }
    match checks.field(meta, "pipedrive_service_name", Expected) {
        None | Some(Value::Bool(false)) => {}
        Some(Value::String(service)) if !service.is_empty() => checks.warning(
            "pipedrive_service",
            meta.path("pipedrive_service_name"),
            format!("made by Pipedrive's own {service:?} service, not by a user"),
        ),
        Some(other) => checks.violation(
            meta.path("pipedrive_service_name"),
            format!("must be false or a service name, got {}", short(other)),
        ),
    }
    if let Some(filters) = meta.get("matches_filters")
        && !filters.is_object()
    {
        checks.violation(
            meta.path("matches_filters"),
            format!("must be an object, got {}", kind(filters)),
        );
    }
    if object == Some("activity") {
        checks.boolean(meta, "send_activity_notifications", Expected);
        if let Some(language) = meta.get("activity_notifications_language")
            && !language.is_string()
        {
            checks.violation(
                meta.path("activity_notifications_language"),
                format!("must be a language code or null, got {}", kind(language)),
            );
        }
    }
    if let (Some(seconds), Some(micros)) = (timestamp, timestamp_micro)
        && (micros / 1_000_000 - seconds).abs() > 1
    {
        checks.warning(
            "timestamp_mismatch",
            meta.path("timestamp_micro"),
            format!("timestamp_micro {micros} is not within a second of timestamp {seconds}"),
        );
    }

    // Top level: retry counter, event name and the snapshots.
    let retry = checks.integer(root, "retry", Expected, 0, 3).unwrap_or(0);
    if retry > 0 {
        checks.warning(
            "redelivery",
            "retry",
            format!("retry {retry} of an earlier failed delivery"),
        );
    }
    if let (Some(action), Some(object)) = (action, object) {
        if let Some(event) = checks.string(root, "event", Expected) {
            let expected = format!("{action}.{object}");
            if event != expected {
                checks.violation(
                    "event",
                    format!("{event:?} disagrees with meta: expected {expected:?}"),
                );
            }
        }
        check_v1_snapshots(&mut checks, body, action, object, id);
    }

    let warnings = checks.finish()?;
    let (Some(action), Some(object), Some(id), Some(timestamp_micro), Some(webhook_id)) =
        (action, object, id, timestamp_micro, webhook_id)
    else {
        return Err(required_fields_missing());
    };
    let event_id = v1_event_id(tenant, &webhook_id, object, id, action, timestamp_micro);
    Ok(Prevalidated {
        event_id,
        payload_version: "1".into(),
        object: object.to_owned(),
        object_id: id.to_string(),
        action: action.to_owned(),
        attempt: u32::try_from(retry).unwrap_or(0) + 1,
        occurred_at_micros: u64::try_from(timestamp_micro).unwrap_or(0),
        warnings,
    })
}

/// Every missing required field is reported as a violation before this point;
/// this only keeps the extraction total.
fn required_fields_missing() -> Vec<Violation> {
    vec![Violation {
        field: "meta".into(),
        reason: "required fields are missing".into(),
    }]
}

/// v1 snapshots: `added` has only `current`, `deleted` only `previous`,
/// `updated` and `merged` both. For `user` each is a one-element array.
fn check_v1_snapshots(
    checks: &mut Checks,
    body: &Body,
    action: &str,
    object: &str,
    id: Option<i64>,
) {
    let (current_needed, previous_needed) = match action {
        "added" => (true, false),
        "deleted" => (false, true),
        _ => (true, true),
    };
    let mut snapshot_id = None;
    for (key, needed) in [("current", current_needed), ("previous", previous_needed)] {
        let present = body.skimmed.get(key).filter(|s| **s != Skimmed::Null);
        match (needed, present) {
            (true, None) => checks.violation(key, format!("required for {action}.{object}")),
            (false, Some(v)) => checks.violation(
                key,
                format!("must be null for {action}.{object}, got {}", v.kind()),
            ),
            (true, Some(snapshot)) => {
                let found = match (object, snapshot) {
                    ("user", Skimmed::Array { first: Some(id) }) => Some(id),
                    ("user", _) => {
                        checks.violation(
                            key,
                            "must be an array holding the user object for user events",
                        );
                        None
                    }
                    (_, Skimmed::Object { id }) => Some(id),
                    (_, other) => {
                        checks.violation(key, format!("must be an object, got {}", other.kind()));
                        None
                    }
                };
                // The snapshot that describes the object now: current, or previous on delete.
                if let (None, Some(Some(id))) = (&snapshot_id, found) {
                    snapshot_id = Some((key, id.clone()));
                }
            }
            (false, None) => {}
        }
    }
    if let (Some(id), Some((key, snapshot))) = (id, snapshot_id)
        && snapshot.as_i64() != Some(id)
    {
        checks.violation(
            format!("{key}.id"),
            format!("{} disagrees with meta.id {id}", short(&snapshot)),
        );
    }
}

/// The event id of a v1 delivery: v1 carries none, so it is derived from
/// what identifies the change and is identical on every retry.
pub fn v1_event_id(
    tenant: &str,
    webhook_id: &str,
    object: &str,
    id: i64,
    action: &str,
    timestamp_micro: i64,
) -> String {
    let name = format!(
        "pipedrive/v1\n{tenant}\n{webhook_id}\n{object}\n{id}\n{action}\n{timestamp_micro}"
    );
    Uuid::new_v5(&V1_EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
}

fn prevalidate_v2(
    meta: &Obj<'_>,
    body: &Body,
    mut checks: Checks,
) -> Result<Prevalidated, Vec<Violation>> {
    use Presence::{Expected, Optional, Required};

    if let Some(version) = checks.field(meta, "version", Required)
        && version.as_str() != Some("2.0")
    {
        checks.violation(
            meta.path("version"),
            format!("must be \"2.0\", got {}", short(version)),
        );
    }
    let action = checks.one_of(meta, "action", Required, V2_ACTIONS);
    let entity = checks.string(meta, "entity", Required);
    if let Some(entity) = entity
        && !V2_ENTITIES.contains(&entity)
    {
        checks.warning(
            "unknown_entity",
            meta.path("entity"),
            format!("entity {entity:?} is not one Tributary knows yet"),
        );
    }
    let entity_id = checks.id(meta, "entity_id", Required);
    let event_id = checks.id(meta, "id", Required);
    let occurred_at_micros = match checks.field(meta, "timestamp", Required) {
        Some(value) => match v2_timestamp_micros(value) {
            Some(micros) => Some(micros),
            None => {
                checks.violation(
                    meta.path("timestamp"),
                    format!("must be an ISO-8601 date-time or an epoch in seconds or milliseconds, got {}", short(value)),
                );
                None
            }
        },
        None => None,
    };
    let attempt = checks.integer(meta, "attempt", Expected, 1, 4).unwrap_or(1);
    if attempt > 1 {
        checks.warning(
            "redelivery",
            meta.path("attempt"),
            format!("attempt {attempt}: a retry of an earlier failed delivery"),
        );
    }
    if checks.boolean(meta, "is_bulk_edit", Expected) == Some(true) {
        checks.warning(
            "bulk_update",
            meta.path("is_bulk_edit"),
            "part of a bulk edit from a list view",
        );
    }
    checks.id(meta, "company_id", Expected);
    checks.id(meta, "user_id", Expected);
    checks.id(meta, "webhook_id", Expected);
    checks.id(meta, "webhook_owner_id", Optional);
    checks.id(meta, "correlation_id", Optional);
    checks.string(meta, "host", Expected);
    checks.one_of(meta, "change_source", Expected, CHANGE_SOURCES);
    checks.one_of(meta, "type", Optional, V2_TYPES);
    if entity != Some("user") {
        checks.id_array(meta, "permitted_user_ids", Optional);
    }
    if let Some(into) = checks.id(meta, "merged_to_id", Optional) {
        checks.warning(
            "merge",
            meta.path("merged_to_id"),
            format!("deleted because it was merged into {into}"),
        );
    }
    if let Some(from) = checks.id(meta, "merged_from_id", Optional) {
        checks.warning(
            "merge",
            meta.path("merged_from_id"),
            format!("changed because {from} was merged into it"),
        );
    }
    if let (Some(action), Some(entity_id)) = (action, entity_id.as_deref()) {
        check_v2_snapshots(&mut checks, body, action, entity_id);
    }

    let warnings = checks.finish()?;
    let (Some(action), Some(entity), Some(entity_id), Some(event_id), Some(occurred_at_micros)) =
        (action, entity, entity_id, event_id, occurred_at_micros)
    else {
        return Err(required_fields_missing());
    };
    Ok(Prevalidated {
        event_id,
        payload_version: "2.0".into(),
        object: entity.to_owned(),
        object_id: entity_id,
        action: action.to_owned(),
        attempt: u32::try_from(attempt).unwrap_or(1),
        occurred_at_micros,
        warnings,
    })
}

/// v2 snapshots: `create` has `data` only, `delete` has `previous` only (the
/// full last state), `change` has both (`previous` holds the changed fields).
fn check_v2_snapshots(checks: &mut Checks, body: &Body, action: &str, entity_id: &str) {
    let (data_needed, previous_needed) = match action {
        "create" => (true, false),
        "delete" => (false, true),
        _ => (true, true),
    };
    for (key, needed) in [("data", data_needed), ("previous", previous_needed)] {
        let present = body.skimmed.get(key).filter(|s| **s != Skimmed::Null);
        match (needed, present) {
            (true, None) => checks.violation(key, format!("required for a {action} event")),
            (true, Some(Skimmed::Object { .. })) | (false, None) => {}
            (true, Some(other)) => {
                checks.violation(key, format!("must be an object, got {}", other.kind()))
            }
            (false, Some(other)) => checks.violation(
                key,
                format!("must be null for a {action} event, got {}", other.kind()),
            ),
        }
    }
    // The full snapshot names the entity: data, or previous on delete.
    let full = if action == "delete" {
        "previous"
    } else {
        "data"
    };
    if let Some(Skimmed::Object {
        id: Some(snapshot_id),
    }) = body.skimmed.get(full)
        && id_text(snapshot_id).as_deref() != Some(entity_id)
    {
        checks.violation(
            format!("{full}.id"),
            format!(
                "{} disagrees with meta.entity_id {entity_id:?}",
                short(snapshot_id)
            ),
        );
    }
}

/// Reads a v2 `meta.timestamp`: RFC 3339 text, or epoch seconds or
/// milliseconds as a number or digit string.
pub fn v2_timestamp_micros(value: &Value) -> Option<u64> {
    let epoch = |n: u64| match n {
        1_000_000_000..=9_999_999_999 => Some(n * 1_000_000),
        1_000_000_000_000..=9_999_999_999_999 => Some(n * 1_000),
        _ => None,
    };
    match value {
        Value::Number(n) => epoch(n.as_u64()?),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            epoch(s.parse().ok()?)
        }
        Value::String(s) => {
            let parsed = DateTime::parse_from_rfc3339(s).ok()?;
            u64::try_from(parsed.timestamp_micros()).ok()
        }
        _ => None,
    }
}
