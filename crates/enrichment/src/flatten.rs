//! Flattening nested JSON into one level of keys.
//!
//! Dashboards and ClickHouse want one column per value, so an enriched event
//! is a single JSON object whose values are scalars or arrays of scalars:
//!
//! - object members join their key to the parent's with `_`:
//!   `{"email_validation": {"status": "valid"}}` → `email_validation_status`;
//! - arrays holding objects (or arrays) are numbered from 1:
//!   `email_validation.sources[0].domain` → `email_validation_sources_1_domain`;
//! - arrays of scalars stay arrays: `event_permitted_user_ids: [1, 2]`;
//! - scalars and `null` stay as they are; an empty object adds nothing;
//! - two paths that flatten to the same key are an error, never an overwrite
//!   (`{"a_b": 1, "a": {"b": 2}}` cannot be flattened).

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flattening produced the key {key:?} twice")]
pub struct Collision {
    pub key: String,
}

/// A flat event under construction, in insertion order. Keys must be unique:
/// a repeat is reported as a [`Collision`] when the record is finished
/// (checking once at the end is much cheaper than on every insert).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlatRecord {
    fields: Vec<(Cow<'static, str>, Value)>,
}

impl FlatRecord {
    pub fn new() -> Self {
        FlatRecord {
            fields: Vec::with_capacity(96),
        }
    }

    /// Adds one scalar (or array of scalars) under `key`.
    pub fn put(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.fields.push((key.into(), value.into()));
    }

    /// Adds `value` flattened under `prefix` (see the module documentation).
    pub fn put_flattened(&mut self, prefix: &str, value: &Value) {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    self.put_flattened(&join(prefix, key), member);
                }
            }
            Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                for (index, item) in items.iter().enumerate() {
                    self.put_flattened(&join(prefix, &(index + 1).to_string()), item);
                }
            }
            scalar_or_scalars => self.put(prefix.to_owned(), scalar_or_scalars.clone()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(index).1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Fails on the first key present twice.
    pub fn check(&self) -> Result<(), Collision> {
        let mut seen = FxHashSet::with_capacity_and_hasher(self.fields.len(), Default::default());
        match self.keys().find(|key| !seen.insert(*key)) {
            Some(key) => Err(Collision {
                key: key.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The record as a JSON object, keys in insertion order.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, Collision> {
        self.check()?;
        let mut out = Vec::with_capacity(64 * self.fields.len());
        out.push(b'{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            match key {
                // Keys written in the code are plain identifiers: no escaping needed.
                Cow::Borrowed(key) if is_identifier(key) => {
                    out.push(b'"');
                    out.extend_from_slice(key.as_bytes());
                    out.push(b'"');
                }
                // Strings and JSON values always serialise into a Vec.
                _ => {
                    let _ = serde_json::to_writer(&mut out, key.as_ref());
                }
            }
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, value);
        }
        out.push(b'}');
        Ok(out)
    }

    pub fn into_map(self) -> Result<Map<String, Value>, Collision> {
        self.check()?;
        Ok(self
            .fields
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect())
    }
}

/// `flatten(prefix, value)` as a map, for callers that need only that.
pub fn flatten(prefix: &str, value: &Value) -> Result<Map<String, Value>, Collision> {
    let mut record = FlatRecord::new();
    record.put_flattened(prefix, value);
    record.into_map()
}

fn is_identifier(key: &str) -> bool {
    key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        let mut joined = String::with_capacity(prefix.len() + 1 + key.len());
        joined.push_str(prefix);
        joined.push('_');
        joined.push_str(key);
        joined
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_objects_join_with_underscores_and_object_arrays_count_from_one() {
        let value = json!({
            "status": "valid",
            "sources": [
                {"domain": "a.example", "still_on_page": true},
                {"domain": "b.example", "still_on_page": false}
            ],
            "tags": ["x", "y"],
            "nothing": null,
            "empty": {}
        });
        let flat = flatten("email_validation", &value).expect("no collision");
        assert_eq!(
            Value::Object(flat),
            json!({
                "email_validation_status": "valid",
                "email_validation_sources_1_domain": "a.example",
                "email_validation_sources_1_still_on_page": true,
                "email_validation_sources_2_domain": "b.example",
                "email_validation_sources_2_still_on_page": false,
                "email_validation_tags": ["x", "y"],
                "email_validation_nothing": null
            })
        );
    }

    #[test]
    fn arrays_of_arrays_and_mixed_arrays_are_numbered_throughout() {
        let flat = flatten("m", &json!([[1, 2], 3])).expect("flat");
        assert_eq!(Value::Object(flat), json!({"m_1": [1, 2], "m_2": 3}));
    }

    #[test]
    fn a_collision_is_an_error_not_an_overwrite() {
        let err = flatten("", &json!({"a_b": 1, "a": {"b": 2}})).expect_err("collision");
        assert_eq!(err.key, "a_b");
        let mut record = FlatRecord::new();
        record.put("deal_id", 1);
        record.put("deal_id", 2);
        assert_eq!(
            record.to_json_bytes(),
            Err(Collision {
                key: "deal_id".into()
            })
        );
    }

    #[test]
    fn an_empty_prefix_flattens_from_the_top() {
        let flat = flatten("", &json!({"a": {"b": [{"c": 1}]}})).expect("flat");
        assert_eq!(Value::Object(flat), json!({"a_b_1_c": 1}));
    }

    #[test]
    fn serialises_in_insertion_order_with_escaped_keys_and_values() {
        let mut record = FlatRecord::new();
        record.put("b", "x\"y");
        record.put("a", json!([1, 2]));
        record.put(String::from("k\"ey"), Value::Null);
        let bytes = record.to_json_bytes().expect("unique");
        assert_eq!(
            String::from_utf8(bytes.clone()).expect("utf8"),
            r#"{"b":"x\"y","a":[1,2],"k\"ey":null}"#
        );
        let parsed: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(parsed["k\"ey"], Value::Null);
    }
}
