//! Pipedrive webhook bodies of both versions, read into one model.
//!
//! v1 and v2 differ in names (`object`/`entity`, `current`/`data`, `user_id`/
//! `owner_id`), in time formats (`2025-03-04 14:22:31` / RFC 3339), in id
//! types (numbers / strings) and in where custom fields live (top-level hash
//! keys / `custom_fields`). [`parse`] maps both onto the same types with v1's
//! action words, so everything after it works on one shape.
//!
//! Snapshots are read member by member from borrowed raw JSON, picking the
//! known fields and any custom-field hash; nothing else is materialised.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{PayloadVersion, v2_timestamp_micros};

/// The action, in v1's words (v2 `create`/`change`/`delete` map to added/updated/deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Deleted,
    Merged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
            Action::Merged => "merged",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "added" | "create" => Some(Action::Added),
            "updated" | "change" => Some(Action::Updated),
            "deleted" | "delete" => Some(Action::Deleted),
            "merged" => Some(Action::Merged),
            _ => None,
        }
    }
}

/// An object id: numeric for most objects, text for leads and the like.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectId {
    Number(i64),
    Text(String),
}

impl ObjectId {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64().map(ObjectId::Number),
            Value::String(s) => Some(
                s.parse()
                    .map(ObjectId::Number)
                    .unwrap_or_else(|_| ObjectId::Text(s.clone())),
            ),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ObjectId::Number(n) => Value::from(*n),
            ObjectId::Text(s) => Value::from(s.as_str()),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ObjectId::Number(n) => Some(*n),
            ObjectId::Text(_) => None,
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectId::Number(n) => write!(f, "{n}"),
            ObjectId::Text(s) => f.write_str(s),
        }
    }
}

/// The webhook's `meta` block, version-independent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventMeta {
    pub change_source: Option<String>,
    pub company_id: Option<String>,
    pub user_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub host: Option<String>,
    /// Event time in microseconds (v1 `timestamp_micro`; v2 `timestamp`).
    pub timestamp_micro: i64,
    /// v1 only.
    pub prepublish_timestamp: Option<i64>,
    /// v1 only; false for v2.
    pub trans_pending: bool,
    /// v1 `is_bulk_update`, v2 `is_bulk_edit`.
    pub is_bulk_update: bool,
    pub permitted_user_ids: Vec<i64>,
    /// The Pipedrive service that made the change (v1 only; `false` reads as none).
    pub pipedrive_service_name: Option<String>,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// v2 merges: the survivor's id on the deleted object, the merged-away id on the survivor.
    pub merged_to_id: Option<String>,
    pub merged_from_id: Option<String>,
}

/// A custom field's value as the webhook carries it: option ids for enum and
/// set fields (resolved to labels with the field definitions), text or
/// numbers otherwise.
pub type CustomFields = BTreeMap<String, Value>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deal {
    pub id: Option<i64>,
    pub title: Option<String>,
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub stage_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub person_id: Option<i64>,
    pub org_id: Option<i64>,
    pub owner_id: Option<i64>,
    /// v1 only; v2 has just the id.
    pub owner_name: Option<String>,
    pub probability: Option<f64>,
    pub expected_close_date: Option<String>,
    pub add_time: Option<String>,
    pub update_time: Option<String>,
    pub won_time: Option<String>,
    pub lost_time: Option<String>,
    pub lost_reason: Option<String>,
    pub stage_change_time: Option<String>,
    /// Option id of the "Source channel" field.
    pub channel: Option<i64>,
    pub channel_id: Option<String>,
    pub origin: Option<String>,
    pub custom_fields: CustomFields,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The primary email address (else the first).
    pub email: Option<String>,
    /// The primary phone number (else the first).
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub org_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub update_time: Option<String>,
    pub custom_fields: CustomFields,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Organization {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub owner_id: Option<i64>,
    pub address: Option<String>,
    pub update_time: Option<String>,
    pub custom_fields: CustomFields,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub id: Option<i64>,
    pub activity_type: Option<String>,
    pub subject: Option<String>,
    pub done: Option<bool>,
    pub due_date: Option<String>,
    pub due_time: Option<String>,
    /// The assignee: v1 `user_id`, v2 `owner_id`.
    pub user_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub person_id: Option<i64>,
    pub org_id: Option<i64>,
    pub add_time: Option<String>,
    pub marked_as_done_time: Option<String>,
    pub update_time: Option<String>,
}

/// An object snapshot, typed for the objects the pipeline models.
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    Deal(Box<Deal>),
    Person(Person),
    Organization(Organization),
    Activity(Activity),
    /// Other objects (notes, products, users, stages, leads...): their `id` only.
    Other {
        id: Option<ObjectId>,
    },
}

/// A Pipedrive webhook, version-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedriveEvent {
    pub payload_version: PayloadVersion,
    pub action: Action,
    /// v1 `object` / v2 `entity`.
    pub object: String,
    pub object_id: ObjectId,
    pub meta: EventMeta,
    /// The object after the change (v1 `current`, v2 `data`); `None` on delete.
    pub current: Option<Snapshot>,
    /// v1: the full state before; v2: only the changed fields, or the full last state on delete.
    pub previous: Option<Snapshot>,
}

impl PipedriveEvent {
    /// The object's latest known state: `current`, or `previous` when it was deleted.
    pub fn latest(&self) -> Option<&Snapshot> {
        self.current.as_ref().or(self.previous.as_ref())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not a JSON object: {0}")]
    NotJson(String),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// A JSON object's members, borrowed from the body. Hashed, not ordered: a
/// v1 deal has about a hundred members and only a few dozen are looked up.
/// Sized up front: growing a map member by member rehashes it several times.
struct Members<'a>(FxHashMap<&'a str, &'a RawValue>);

impl<'a> Members<'a> {
    fn get(&self, key: &str) -> Option<&&'a RawValue> {
        self.0.get(key)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = FxHashMap::with_capacity_and_hasher(128, Default::default());
                while let Some((key, value)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.insert(key, value);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Reads a Pipedrive webhook body (either version) into the common model.
pub fn parse(body: &[u8]) -> Result<PipedriveEvent, ParseError> {
    let root: Members<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let meta = match root.get("meta") {
        Some(raw) => Reader {
            members: serde_json::from_str(raw.get()).map_err(|e| field("meta", e.to_string()))?,
        },
        None => return Err(field("meta", "missing".into())),
    };
    let version = if meta.members.get("version").is_some() {
        PayloadVersion::V2
    } else {
        PayloadVersion::V1
    };
    let (object_key, after_key, id_key) = match version {
        PayloadVersion::V1 => ("object", "current", "id"),
        PayloadVersion::V2 => ("entity", "data", "entity_id"),
    };
    let object = meta
        .text(object_key)
        .ok_or_else(|| field("meta.object", "missing".into()))?;
    let action = meta
        .text("action")
        .as_deref()
        .and_then(Action::parse)
        .ok_or_else(|| field("meta.action", "missing or unknown".into()))?;
    let object_id = meta
        .get::<Value>(id_key)
        .as_ref()
        .and_then(ObjectId::from_value)
        .ok_or_else(|| field("meta.id", "missing".into()))?;
    let meta = read_meta(version, &meta, &root)?;
    let is_user = object == "user";
    let snapshot = |key: &str| -> Result<Option<Snapshot>, ParseError> {
        match root.get(key) {
            None => Ok(None),
            Some(raw) => read_snapshot(&object, raw, is_user),
        }
    };
    Ok(PipedriveEvent {
        payload_version: version,
        action,
        current: snapshot(after_key)?,
        previous: snapshot("previous")?,
        object,
        object_id,
        meta,
    })
}

/// Reads an entity as the API returns it (`data` of `GET /api/v2/persons/{id}`
/// and the like) with the same rules as webhook snapshots.
pub fn read_entity(object: &str, json: &[u8]) -> Result<Option<Snapshot>, ParseError> {
    let raw: &RawValue =
        serde_json::from_slice(json).map_err(|e| ParseError::NotJson(e.to_string()))?;
    read_snapshot(object, raw, false)
}

fn field(field: &'static str, reason: String) -> ParseError {
    ParseError::Field { field, reason }
}

fn read_meta(
    version: PayloadVersion,
    meta: &Reader<'_>,
    root: &Members<'_>,
) -> Result<EventMeta, ParseError> {
    let flag = |key: &str| meta.get::<bool>(key).unwrap_or(false);
    let timestamp_micro = match version {
        PayloadVersion::V1 => meta
            .int("timestamp_micro")
            .or_else(|| meta.int("timestamp").map(|s| s * 1_000_000))
            .ok_or_else(|| field("meta.timestamp_micro", "missing".into()))?,
        PayloadVersion::V2 => meta
            .get::<Value>("timestamp")
            .as_ref()
            .and_then(v2_timestamp_micros)
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| field("meta.timestamp", "missing or unreadable".into()))?,
    };
    let attempt = match version {
        PayloadVersion::V1 => {
            let retry: i64 = root
                .get("retry")
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or(0);
            u32::try_from(retry + 1).unwrap_or(1)
        }
        PayloadVersion::V2 => meta
            .int("attempt")
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1),
    };
    Ok(EventMeta {
        change_source: meta.text("change_source"),
        company_id: meta.text("company_id"),
        user_id: meta.int("user_id"),
        webhook_id: meta.text("webhook_id"),
        host: meta.text("host"),
        timestamp_micro,
        prepublish_timestamp: meta.int("prepublish_timestamp"),
        trans_pending: flag("trans_pending"),
        is_bulk_update: flag("is_bulk_update") || flag("is_bulk_edit"),
        permitted_user_ids: meta
            .get::<Vec<Value>>("permitted_user_ids")
            .map(|ids| ids.iter().filter_map(integer).collect())
            .unwrap_or_default(),
        // `false` (v1's "no service") reads as none.
        pipedrive_service_name: meta
            .get::<Value>("pipedrive_service_name")
            .and_then(|v| v.as_str().map(str::to_owned)),
        attempt,
        merged_to_id: meta.text("merged_to_id"),
        merged_from_id: meta.text("merged_from_id"),
    })
}

fn read_snapshot(
    object: &str,
    raw: &RawValue,
    is_user: bool,
) -> Result<Option<Snapshot>, ParseError> {
    let text = raw.get().trim_start();
    if text.starts_with('n') {
        return Ok(None);
    }
    // v1 user events carry a one-element array.
    let members: Members<'_> = if is_user && text.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(raw.get()).map_err(|e| field("current", e.to_string()))?;
        match items.first() {
            Some(first) => {
                serde_json::from_str(first.get()).map_err(|e| field("current", e.to_string()))?
            }
            None => return Ok(None),
        }
    } else {
        serde_json::from_str(raw.get()).map_err(|e| field("current", e.to_string()))?
    };
    let m = Reader { members };
    Ok(Some(match object {
        "deal" => Snapshot::Deal(Box::new(Deal {
            id: m.int("id"),
            title: m.text("title"),
            value: m.float("value"),
            currency: m.text("currency"),
            status: m.text("status"),
            stage_id: m.int("stage_id"),
            pipeline_id: m.int("pipeline_id"),
            person_id: m.int("person_id"),
            org_id: m.int("org_id"),
            owner_id: m.int("owner_id").or_else(|| m.int("user_id")),
            owner_name: m.text("owner_name"),
            probability: m.float("probability"),
            expected_close_date: m.text("expected_close_date"),
            add_time: m.time("add_time"),
            update_time: m.time("update_time"),
            won_time: m.time("won_time"),
            lost_time: m.time("lost_time"),
            lost_reason: m.text("lost_reason"),
            stage_change_time: m.time("stage_change_time"),
            channel: m.int("channel"),
            channel_id: m.text("channel_id"),
            origin: m.text("origin"),
            custom_fields: m.custom_fields(),
        })),
        "person" => Snapshot::Person(Person {
            id: m.int("id"),
            name: m.text("name"),
            first_name: m.text("first_name"),
            last_name: m.text("last_name"),
            email: m.primary("email").or_else(|| m.primary("emails")),
            phone: m.primary("phone").or_else(|| m.primary("phones")),
            job_title: m.text("job_title"),
            org_id: m.int("org_id"),
            owner_id: m.int("owner_id"),
            update_time: m.time("update_time"),
            custom_fields: m.custom_fields(),
        }),
        "organization" => Snapshot::Organization(Organization {
            id: m.int("id"),
            name: m.text("name"),
            owner_id: m.int("owner_id"),
            address: m
                .text("address")
                .or_else(|| m.nested_text("address", "value")),
            update_time: m.time("update_time"),
            custom_fields: m.custom_fields(),
        }),
        "activity" => Snapshot::Activity(Activity {
            id: m.int("id"),
            activity_type: m.text("type"),
            subject: m.text("subject"),
            done: m.get::<bool>("done"),
            due_date: m.text("due_date"),
            due_time: m.text("due_time"),
            user_id: m.int("owner_id").or_else(|| m.int("user_id")),
            deal_id: m.int("deal_id"),
            person_id: m.int("person_id"),
            org_id: m.int("org_id"),
            add_time: m.time("add_time"),
            marked_as_done_time: m.time("marked_as_done_time"),
            update_time: m.time("update_time"),
        }),
        _ => Snapshot::Other {
            id: m.get::<Value>("id").as_ref().and_then(ObjectId::from_value),
        },
    }))
}

/// Typed access to a snapshot's members, lenient about the representations
/// the two versions (and API v1 shapes) use.
struct Reader<'a> {
    members: Members<'a>,
}

impl Reader<'_> {
    fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(self.members.get(key)?.get()).ok()
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get::<Value>(key)
            .as_ref()
            .and_then(id_or_text)
            .filter(|s| !s.is_empty())
    }

    fn nested_text(&self, key: &str, inner: &str) -> Option<String> {
        self.get::<Value>(key)?
            .get(inner)?
            .as_str()
            .map(str::to_owned)
    }

    /// Integers, numeric strings, and API-v1 style `{"value": id, ...}` objects.
    fn int(&self, key: &str) -> Option<i64> {
        let value = self.get::<Value>(key)?;
        integer(&value).or_else(|| {
            value
                .get("value")
                .and_then(integer)
                .or_else(|| value.get("id").and_then(integer))
        })
    }

    fn float(&self, key: &str) -> Option<f64> {
        match self.get::<Value>(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    fn time(&self, key: &str) -> Option<String> {
        self.text(key).map(|t| normalize_time(&t))
    }

    /// The primary (else first) `value` of a `[{value, primary}]` list.
    fn primary(&self, key: &str) -> Option<String> {
        let items = self.get::<Vec<Value>>(key)?;
        let chosen = items
            .iter()
            .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first())?;
        chosen
            .get("value")?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// v2 `custom_fields` (`{hash: {type, value|id|ids}}` or `{hash: value}`)
    /// and v1 top-level 40-character hash keys.
    fn custom_fields(&self) -> CustomFields {
        let mut fields = CustomFields::new();
        if let Some(Value::Object(nested)) = self.get::<Value>("custom_fields") {
            for (key, value) in nested {
                let value = match value {
                    Value::Object(mut typed) => typed
                        .remove("id")
                        .or_else(|| typed.remove("ids"))
                        .or_else(|| typed.remove("value"))
                        .unwrap_or(Value::Null),
                    other => other,
                };
                fields.insert(key, value);
            }
        }
        for (key, raw) in &self.members.0 {
            if is_custom_field_key(key)
                && let Ok(value) = serde_json::from_str::<Value>(raw.get())
            {
                fields.insert((*key).to_owned(), value);
            }
        }
        fields
    }
}

/// Custom field keys are 40 hexadecimal characters.
pub fn is_custom_field_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn id_or_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Times as RFC 3339 UTC to the second: `2025-03-04 14:22:31` (v1, UTC) and
/// `2025-03-04T14:22:31.000Z` (v2) both become `2025-03-04T14:22:31Z`.
/// Anything else is kept as given.
pub fn normalize_time(text: &str) -> String {
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b' ' || bytes[10] == b'T')
        && bytes[13] == b':'
        && bytes[16] == b':'
        // The seconds end at byte 19, not inside a multi-byte character.
        && text.is_char_boundary(19);
    if !shaped {
        return text.to_owned();
    }
    let rest = &text[19..];
    let utc = rest.is_empty()
        || rest == "Z"
        || (rest.starts_with('.')
            && rest.ends_with('Z')
            && rest[1..rest.len() - 1].bytes().all(|b| b.is_ascii_digit()));
    if utc {
        format!("{}T{}Z", &text[..10], &text[11..19])
    } else {
        match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => t
                .with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            Err(_) => text.to_owned(),
        }
    }
}
