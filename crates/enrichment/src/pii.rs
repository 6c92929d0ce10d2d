//! Per-tenant handling of contact data: mask (the default), keep, hash
//! (salted SHA-256) or drop.
//!
//! The policy names the enriched event's contact fields, which every
//! platform fills alike; a platform reads it from its tenant section
//! (`[tenants.<tenant>.<platform>.pii]`).

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tributary_config::Secret;

use crate::flatten::FlatRecord;

/// `[tenants.<tenant>.<platform>.pii]`: per contact field, `mask` (the
/// default: enough to recognise, not enough to contact), `keep`, `hash`
/// (salted SHA-256, hex) or `drop`. A tenant that says nothing gets every
/// field masked; keeping personal data is a choice made explicitly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiPolicy {
    pub contact_email: PiiAction,
    pub contact_first_name: PiiAction,
    pub contact_last_name: PiiAction,
    pub contact_phone_number: PiiAction,
    pub contact_position: PiiAction,
}

impl PiiPolicy {
    /// The action for an output field, `keep` for fields the policy does not cover.
    pub fn action_for(&self, field: &str) -> PiiAction {
        match field {
            "contact_email" | "email_validation_email" => self.contact_email,
            "contact_first_name" => self.contact_first_name,
            "contact_last_name" => self.contact_last_name,
            "contact_phone_number" => self.contact_phone_number,
            "contact_position" => self.contact_position,
            _ => PiiAction::Keep,
        }
    }

    pub fn hashes_anything(&self) -> bool {
        [
            self.contact_email,
            self.contact_first_name,
            self.contact_last_name,
            self.contact_phone_number,
            self.contact_position,
        ]
        .contains(&PiiAction::Hash)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// The first character and a mask; an email keeps its domain, a phone
    /// number its last two digits.
    #[default]
    Mask,
    Keep,
    Hash,
    Drop,
}

/// The fields a policy can act on.
const CONTACT_FIELDS: &[&str] = &[
    "contact_email",
    "contact_first_name",
    "contact_last_name",
    "contact_phone_number",
    "contact_position",
    "email_validation_email",
];

/// Applies `policy` to the contact fields of `record`, in place.
pub fn apply(policy: &PiiPolicy, salt: Option<&Secret>, record: &mut FlatRecord) {
    for field in CONTACT_FIELDS {
        match policy.action_for(field) {
            PiiAction::Keep => {}
            PiiAction::Mask => {
                if let Some(Value::String(text)) = record.remove(field) {
                    record.put(*field, mask(field, &text));
                }
            }
            PiiAction::Drop => {
                record.remove(field);
            }
            PiiAction::Hash => {
                if let Some(Value::String(text)) = record.remove(field) {
                    record.put(*field, hash(salt, &text));
                }
            }
        }
    }
}

/// `jane.doe@omni.com` → `j***@omni.com`, `Jane` → `J***`, `+1 555 0100`
/// → `***00`; empty stays empty.
pub fn mask(field: &str, value: &str) -> String {
    let value = value.trim();
    let Some(first) = value.chars().next() else {
        return String::new();
    };
    if field.ends_with("email")
        && let Some((_, domain)) = value.rsplit_once('@')
    {
        return format!("{first}***@{domain}");
    }
    if field.ends_with("phone_number") {
        let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
        let last: String = digits[digits.len().saturating_sub(2)..].iter().collect();
        return format!("***{last}");
    }
    format!("{first}***")
}

/// Hex SHA-256 of salt and value. Emails are lower-cased first so the same
/// address hashes the same however it was typed.
pub fn hash(salt: Option<&Secret>, value: &str) -> String {
    let mut hasher = Sha256::new();
    if let Some(salt) = salt {
        hasher.update(salt.expose().as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(value.trim().to_lowercase().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record() -> FlatRecord {
        let mut record = FlatRecord::new();
        record.put("contact_email", "Ana@Example.com");
        record.put("email_validation_email", "ana@example.com");
        record.put("contact_phone_number", "+34 911");
        record.put("contact_first_name", "Ana");
        record.put("deal_id", 7);
        record
    }

    #[test]
    fn keep_hash_and_drop_act_on_contact_fields_only() {
        let policy: PiiPolicy = serde_json::from_value(json!({
            "contact_email": "hash", "contact_phone_number": "drop"
        }))
        .expect("policy");
        let salt = Secret::new("pepper");
        let mut record = record();
        apply(&policy, Some(&salt), &mut record);
        let hashed = record
            .get("contact_email")
            .and_then(Value::as_str)
            .expect("hashed email");
        assert_eq!(hashed.len(), 64);
        assert_ne!(hashed, "Ana@Example.com");
        assert_eq!(
            record.get("email_validation_email").and_then(Value::as_str),
            Some(hashed),
            "same address, same hash"
        );
        assert!(!record.contains("contact_phone_number"));
        assert_eq!(
            record.get("contact_first_name"),
            Some(&json!("A***")),
            "what the policy leaves out is masked"
        );
        assert_eq!(record.get("deal_id"), Some(&json!(7)));
    }

    #[test]
    fn a_tenant_without_a_policy_gets_every_contact_field_masked() {
        let mut masked = record();
        apply(&PiiPolicy::default(), None, &mut masked);
        let text = |field: &str| masked.get(field).and_then(Value::as_str).map(str::to_owned);
        assert_eq!(text("contact_email").as_deref(), Some("A***@Example.com"));
        assert_eq!(
            text("email_validation_email").as_deref(),
            Some("a***@example.com")
        );
        assert_eq!(text("contact_phone_number").as_deref(), Some("***11"));
        assert_eq!(text("contact_first_name").as_deref(), Some("A***"));
        assert_eq!(
            masked.get("deal_id"),
            Some(&json!(7)),
            "other fields untouched"
        );

        let keep: PiiPolicy = serde_json::from_value(json!({
            "contact_email": "keep", "contact_first_name": "keep", "contact_last_name": "keep",
            "contact_phone_number": "keep", "contact_position": "keep"
        }))
        .expect("policy");
        let mut kept = record();
        apply(&keep, None, &mut kept);
        assert_eq!(kept.get("contact_email"), Some(&json!("Ana@Example.com")));
        assert_eq!(mask("contact_email", "not an address"), "n***");
        assert_eq!(mask("contact_last_name", ""), "");
    }

    #[test]
    fn the_salt_changes_the_hash() {
        assert_ne!(
            hash(Some(&Secret::new("a")), "x@y.z"),
            hash(Some(&Secret::new("b")), "x@y.z")
        );
        assert_eq!(
            hash(Some(&Secret::new("a")), " X@Y.z"),
            hash(Some(&Secret::new("a")), "x@y.z")
        );
    }
}
