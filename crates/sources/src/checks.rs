//! Field-by-field checks on a JSON body that collect every violation and
//! warning instead of stopping at the first, so a rejected delivery can say
//! everything that is wrong with it at once.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::{Violation, Warning};

/// A JSON object body, read without building its large members: those are
/// skimmed for their kind and `id`, which is all a check needs of them and
/// saves most of the parsing cost of a full-object snapshot.
#[derive(Debug)]
pub struct Body {
    /// Every member except the skimmed ones, parsed.
    pub small: Map<String, Value>,
    /// The members named when reading, summarised.
    pub skimmed: BTreeMap<String, Skimmed>,
}

/// What a skimmed member is.
#[derive(Debug, Clone, PartialEq)]
pub enum Skimmed {
    Null,
    /// An object, with its `id` member if it has one.
    Object {
        id: Option<Value>,
    },
    /// An array, with the `id` of its first element if that is an object.
    Array {
        first: Option<Option<Value>>,
    },
    /// A string, number or boolean.
    Scalar(&'static str),
}

impl Skimmed {
    pub fn kind(&self) -> &'static str {
        match self {
            Skimmed::Null => "null",
            Skimmed::Object { .. } => "an object",
            Skimmed::Array { .. } => "an array",
            Skimmed::Scalar(kind) => kind,
        }
    }
}

/// Why a body could not be read as an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all; the parser's message.
    Malformed(String),
    /// JSON, but not an object; its kind.
    NotAnObject(&'static str),
}

/// Reads a JSON object body, skimming the members named in `skim`.
pub fn read_object(bytes: &[u8], skim: &[&str]) -> Result<Body, BodyError> {
    let members: BTreeMap<String, &RawValue> = match serde_json::from_slice(bytes) {
        Ok(members) => members,
        Err(err) => {
            return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => BodyError::NotAnObject(raw_kind(bytes)),
                Err(_) => BodyError::Malformed(err.to_string()),
            });
        }
    };
    let mut body = Body {
        small: Map::new(),
        skimmed: BTreeMap::new(),
    };
    for (key, raw) in members {
        if skim.contains(&key.as_str()) {
            body.skimmed.insert(key, skim_value(raw));
        } else {
            let value =
                serde_json::from_str(raw.get()).map_err(|e| BodyError::Malformed(e.to_string()))?;
            body.small.insert(key, value);
        }
    }
    Ok(body)
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<Value>,
}

fn skim_value(raw: &RawValue) -> Skimmed {
    let text = raw.get();
    match text.trim_start().as_bytes().first() {
        Some(b'n') => Skimmed::Null,
        Some(b'{') => Skimmed::Object {
            id: serde_json::from_str::<IdOnly>(text).ok().and_then(|o| o.id),
        },
        Some(b'[') => {
            let items = serde_json::from_str::<Vec<&RawValue>>(text).unwrap_or_default();
            // None when the first element is missing or not an object.
            let first = items.first().and_then(|item| {
                let item = item.get();
                item.trim_start()
                    .starts_with('{')
                    .then(|| serde_json::from_str::<IdOnly>(item).ok().and_then(|o| o.id))
            });
            Skimmed::Array { first }
        }
        Some(b'"') => Skimmed::Scalar("a string"),
        Some(b't' | b'f') => Skimmed::Scalar("a boolean"),
        _ => Skimmed::Scalar("a number"),
    }
}

fn raw_kind(bytes: &[u8]) -> &'static str {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// Whether a field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Absent or null is a violation.
    Required,
    /// Absent is a `missing_field` warning; the platform always sends it.
    Expected,
    /// Absent is fine.
    Optional,
}

/// Collected outcome of a body's checks.
#[derive(Debug, Default)]
pub struct Checks {
    violations: Vec<Violation>,
    warnings: Vec<Warning>,
}

impl Checks {
    pub fn violation(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            reason: reason.into(),
        });
    }

    pub fn warning(
        &mut self,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Warning {
            code,
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The warnings if nothing was violated, else every violation.
    pub fn finish(self) -> Result<Vec<Warning>, Vec<Violation>> {
        if self.violations.is_empty() {
            Ok(self.warnings)
        } else {
            Err(self.violations)
        }
    }

    /// Reads `key` of `object`, applying `presence`. `None` when absent or null
    /// (after recording what that means).
    pub fn field<'a>(
        &mut self,
        object: &Obj<'a>,
        key: &str,
        presence: Presence,
    ) -> Option<&'a Value> {
        match object.map.get(key) {
            Some(Value::Null) | None => {
                let path = object.path(key);
                match presence {
                    Presence::Required => self.violation(path, "required field is missing"),
                    Presence::Expected => self.warning(
                        "missing_field",
                        path,
                        "field the platform normally sends is missing",
                    ),
                    Presence::Optional => {}
                }
                None
            }
            Some(value) => Some(value),
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(
        &mut self,
        object: &Obj<'_>,
        key: &str,
        presence: Presence,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let value = self.field(object, key, presence)?;
        match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.violation(object.path(key), format!("{n} is outside {min}..={max}"));
                None
            }
            None => {
                self.violation(
                    object.path(key),
                    format!("must be an integer, got {}", kind(value)),
                );
                None
            }
        }
    }

    /// An integer with exactly `digits` decimal digits (epoch timestamps).
    pub fn digits(
        &mut self,
        object: &Obj<'_>,
        key: &str,
        presence: Presence,
        digits: u32,
    ) -> Option<i64> {
        let min = 10_i64.pow(digits - 1);
        let max = 10_i64.pow(digits) - 1;
        let value = self.field(object, key, presence)?;
        match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.violation(
                    object.path(key),
                    format!(
                        "must be a {digits}-digit integer epoch timestamp, got {}",
                        short(value)
                    ),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, object: &Obj<'_>, key: &str, presence: Presence) -> Option<bool> {
        let value = self.field(object, key, presence)?;
        let flag = value.as_bool();
        if flag.is_none() {
            self.violation(
                object.path(key),
                format!("must be true or false, got {}", kind(value)),
            );
        }
        flag
    }

    /// A non-empty string.
    pub fn string<'a>(
        &mut self,
        object: &Obj<'a>,
        key: &str,
        presence: Presence,
    ) -> Option<&'a str> {
        let value = self.field(object, key, presence)?;
        match value.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.violation(object.path(key), "must not be empty");
                None
            }
            None => {
                self.violation(
                    object.path(key),
                    format!("must be a string, got {}", kind(value)),
                );
                None
            }
        }
    }

    /// A string from a fixed set.
    pub fn one_of<'a>(
        &mut self,
        object: &Obj<'a>,
        key: &str,
        presence: Presence,
        allowed: &[&str],
    ) -> Option<&'a str> {
        let text = self.string(object, key, presence)?;
        if allowed.contains(&text) {
            Some(text)
        } else {
            self.violation(
                object.path(key),
                format!("{text:?} is not one of {}", allowed.join(", ")),
            );
            None
        }
    }

    /// An identifier given as a positive integer or a non-empty string; returned as text.
    pub fn id(&mut self, object: &Obj<'_>, key: &str, presence: Presence) -> Option<String> {
        let value = self.field(object, key, presence)?;
        match id_text(value) {
            Some(id) => Some(id),
            None => {
                self.violation(
                    object.path(key),
                    format!(
                        "must be a positive integer or a non-empty string, got {}",
                        short(value)
                    ),
                );
                None
            }
        }
    }

    /// A JSON object.
    pub fn object<'a>(
        &mut self,
        object: &Obj<'a>,
        key: &str,
        presence: Presence,
    ) -> Option<Obj<'a>> {
        let value = self.field(object, key, presence)?;
        match value.as_object() {
            Some(map) => Some(Obj::new(map, object.path(key))),
            None => {
                self.violation(
                    object.path(key),
                    format!("must be an object, got {}", kind(value)),
                );
                None
            }
        }
    }

    /// An array whose every element is an id (integer or string).
    pub fn id_array(&mut self, object: &Obj<'_>, key: &str, presence: Presence) -> Option<usize> {
        let value = self.field(object, key, presence)?;
        let Some(items) = value.as_array() else {
            self.violation(
                object.path(key),
                format!("must be an array, got {}", kind(value)),
            );
            return None;
        };
        for (index, item) in items.iter().enumerate() {
            if id_text(item).is_none() {
                self.violation(
                    format!("{}[{index}]", object.path(key)),
                    format!("must be an id, got {}", short(item)),
                );
            }
        }
        Some(items.len())
    }
}

/// A JSON object together with its dotted path from the body's root.
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub prefix: String,
}

impl<'a> Obj<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        Obj {
            map,
            prefix: prefix.into(),
        }
    }

    /// The body root.
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Obj::new(map, "")
    }

    /// Dotted path of `key` inside this object.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
}

/// An id as text: positive integers and non-empty strings qualify.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(|n| n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The JSON kind of a value, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message, cut to a readable length.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Splits an `Authorization: Basic ...` header value into user and password bytes.
pub fn basic_credentials(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: &Value) -> Obj<'_> {
        Obj::new(value.as_object().expect("object"), "meta")
    }

    #[test]
    fn collects_every_violation_with_its_path() {
        let body = json!({"a": "x", "b": 12, "c": ""});
        let meta = obj(&body);
        let mut checks = Checks::default();
        assert_eq!(checks.integer(&meta, "a", Presence::Required, 0, 10), None);
        assert_eq!(checks.integer(&meta, "b", Presence::Required, 0, 10), None);
        assert_eq!(checks.string(&meta, "c", Presence::Required), None);
        assert_eq!(checks.string(&meta, "d", Presence::Required), None);
        let violations = checks.finish().expect_err("four violations");
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["meta.a", "meta.b", "meta.c", "meta.d"]);
        assert!(violations[1].reason.contains("outside"));
    }

    #[test]
    fn expected_fields_warn_and_optional_fields_do_not() {
        let body = json!({});
        let meta = obj(&body);
        let mut checks = Checks::default();
        checks.boolean(&meta, "x", Presence::Expected);
        checks.boolean(&meta, "y", Presence::Optional);
        let warnings = checks.finish().expect("no violations");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code, "missing_field");
        assert_eq!(warnings[0].field, "meta.x");
    }

    #[test]
    fn digits_checks_epoch_width() {
        let body =
            json!({"s": 1_700_000_000, "short": 170_000_000, "us": 1_700_000_000_000_000_i64});
        let meta = obj(&body);
        let mut checks = Checks::default();
        assert_eq!(
            checks.digits(&meta, "s", Presence::Required, 10),
            Some(1_700_000_000)
        );
        assert_eq!(
            checks.digits(&meta, "us", Presence::Required, 16),
            Some(1_700_000_000_000_000)
        );
        assert_eq!(checks.digits(&meta, "short", Presence::Required, 10), None);
        assert!(!checks.is_clean());
    }

    #[test]
    fn reads_small_members_and_skims_large_ones() {
        let body = br#"{"meta": {"id": 8}, "current": {"id": 8, "title": "x", "nested": {"id": 9}},
            "previous": null, "users": [{"id": "u1"}, 2], "empty": [], "text": "t"}"#;
        let read =
            read_object(body, &["current", "previous", "users", "empty", "text"]).expect("object");
        assert_eq!(read.small.keys().collect::<Vec<_>>(), ["meta"]);
        assert_eq!(
            read.skimmed["current"],
            Skimmed::Object { id: Some(json!(8)) }
        );
        assert_eq!(read.skimmed["previous"], Skimmed::Null);
        assert_eq!(
            read.skimmed["users"],
            Skimmed::Array {
                first: Some(Some(json!("u1")))
            }
        );
        assert_eq!(read.skimmed["empty"], Skimmed::Array { first: None });
        assert_eq!(read.skimmed["text"], Skimmed::Scalar("a string"));
    }

    #[test]
    fn tells_malformed_json_from_json_that_is_not_an_object() {
        assert_eq!(
            read_object(b" [1, 2]", &[]).err(),
            Some(BodyError::NotAnObject("an array"))
        );
        assert!(matches!(
            read_object(b"{\"meta\": ", &[]),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            read_object(b"{\"a\": 1} trailing", &[]),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn ids_accept_positive_numbers_and_strings_only() {
        assert_eq!(id_text(&json!(8)), Some("8".into()));
        assert_eq!(id_text(&json!("8")), Some("8".into()));
        assert_eq!(id_text(&json!(0)), None);
        assert_eq!(id_text(&json!(-3)), None);
        assert_eq!(id_text(&json!("")), None);
        assert_eq!(id_text(&json!(1.5)), None);
        let body = json!({"ids": [1, "2", null]});
        let mut checks = Checks::default();
        checks.id_array(&obj(&body), "ids", Presence::Required);
        let violations = checks.finish().expect_err("null id");
        assert_eq!(violations[0].field, "meta.ids[2]");
    }
}
