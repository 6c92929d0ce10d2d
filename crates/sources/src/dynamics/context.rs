//! Reading a Dataverse `RemoteExecutionContext`: the JSON a Dynamics 365
//! webhook step posts. Its lists are `{key, value}` pairs; its values carry
//! WCF shapes: dates as `/Date(ms)/`, option sets and money as
//! `{"Value": ...}`, references as `{"Id", "LogicalName", "Name"}`.

use serde_json::{Map, Value};

/// The GUID Dataverse writes for "none".
pub const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// A `/Date(1506384247000)/` or `/Date(1506384247000+0000)/` as epoch milliseconds.
pub fn wcf_date_millis(text: &str) -> Option<i64> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    if inner.is_empty() {
        return None;
    }
    // An offset, when present, only says how to show the instant.
    let digits_end = inner[1..].find(['+', '-']).map_or(inner.len(), |at| at + 1);
    inner[..digits_end].parse().ok()
}

/// A GUID in Dataverse's lower-case hyphenated form, if `text` is one.
pub fn guid(text: &str) -> Option<String> {
    let text = text.trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    (groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit())))
    .then(|| text.to_ascii_lowercase())
}

/// The value of `key` in a `[{key, value}]` list.
pub fn keyed<'a>(list: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    list?
        .as_array()?
        .iter()
        .find(|pair| pair.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")
}

/// An Entity's attributes as plain values (see [`plain`]), by logical name;
/// a reference also gives `<name>_name` and `<name>_type`.
pub fn attributes(entity: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(list) = entity.get("Attributes").and_then(Value::as_array) else {
        return out;
    };
    for pair in list {
        let Some(name) = pair.get("key").and_then(Value::as_str) else {
            continue;
        };
        let value = pair.get("value").unwrap_or(&Value::Null);
        if let Some(reference) = reference_id(value) {
            out.insert(name.to_owned(), Value::String(reference));
            if let Some(label) = value.get("Name").and_then(Value::as_str) {
                out.insert(format!("{name}_name"), Value::String(label.to_owned()));
            }
            if let Some(kind) = value.get("LogicalName").and_then(Value::as_str) {
                out.insert(format!("{name}_type"), Value::String(kind.to_owned()));
            }
        } else {
            out.insert(name.to_owned(), plain(value));
        }
    }
    out
}

/// A reference's id (`{"Id": GUID, "LogicalName": ...}`).
fn reference_id(value: &Value) -> Option<String> {
    value.get("LogicalName")?;
    guid(value.get("Id")?.as_str()?)
}

/// A WCF value as a plain JSON value: `{"Value": x}` (option sets, money,
/// booleans) as `x`, a `/Date(ms)/` as RFC 3339 text, option-set
/// collections as lists; anything else as it is.
pub fn plain(value: &Value) -> Value {
    match value {
        Value::Object(object) if object.contains_key("Value") => plain(&object["Value"]),
        Value::String(text) => match wcf_date_millis(text) {
            Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        other => other.clone(),
    }
}
