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

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flattening produced the key {key:?} twice")]
pub struct Collision {
    pub key: String,
}

/// A flat event under construction: keys are unique, a repeat is an error.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlatRecord {
    fields: Map<String, Value>,
}

impl FlatRecord {
    pub fn new() -> Self {
        FlatRecord::default()
    }

    /// Adds one scalar (or array of scalars) under `key`.
    pub fn put(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<(), Collision> {
        let key = key.into();
        if self.fields.contains_key(&key) {
            return Err(Collision { key });
        }
        self.fields.insert(key, value.into());
        Ok(())
    }

    /// Adds `value` flattened under `prefix` (see the module documentation).
    pub fn put_flattened(&mut self, prefix: &str, value: &Value) -> Result<(), Collision> {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    self.put_flattened(&join(prefix, key), member)?;
                }
                Ok(())
            }
            Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                for (index, item) in items.iter().enumerate() {
                    self.put_flattened(&join(prefix, &(index + 1).to_string()), item)?;
                }
                Ok(())
            }
            scalar_or_scalars => self.put(prefix, scalar_or_scalars.clone()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.fields.remove(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.fields.keys()
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.fields
    }

    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Keys are strings and values JSON already: serialising cannot fail.
        serde_json::to_vec(&self.fields).unwrap_or_default()
    }
}

/// `flatten(prefix, value)` as a fresh map, for callers that need only that.
pub fn flatten(prefix: &str, value: &Value) -> Result<Map<String, Value>, Collision> {
    let mut record = FlatRecord::new();
    record.put_flattened(prefix, value)?;
    Ok(record.into_map())
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
        record.put("deal_id", 1).expect("first");
        assert_eq!(
            record.put("deal_id", 2),
            Err(Collision {
                key: "deal_id".into()
            })
        );
        assert_eq!(
            record.get("deal_id"),
            Some(&json!(1)),
            "the first value stays"
        );
    }

    #[test]
    fn an_empty_prefix_flattens_from_the_top() {
        let flat = flatten("", &json!({"a": {"b": [{"c": 1}]}})).expect("flat");
        assert_eq!(Value::Object(flat), json!({"a_b_1_c": 1}));
    }
}
