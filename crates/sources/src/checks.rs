//! Field-by-field checks on a JSON body that collect every violation and
//! warning instead of stopping at the first, so a rejected delivery can say
//! everything that is wrong with it at once.

use serde_json::{Map, Value};

use crate::{Violation, Warning};

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
