//! The dead-letter record: what every stage writes to the dead-letter topic
//! (default `tributary.dead-letter`) for an input it could not process, so
//! one tool can list them and send them back once the cause is fixed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// One input a stage could not process, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage that gave up: `collector` (a malformed element of a batch), `enricher`, `activator`.
    pub stage: String,
    /// Short machine-readable reason, e.g. `malformed_envelope`.
    pub reason: String,
    /// Every error found, each with the path it concerns when there is one.
    pub errors: Vec<DeadLetterError>,
    pub event_id: Option<String>,
    pub tenant: Option<String>,
    pub source: Option<String>,
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    /// RFC 3339 UTC.
    pub failed_at: String,
    /// The input message value, base64.
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterError {
    /// JSON pointer or dotted path inside the input, empty when not applicable.
    #[serde(default)]
    pub path: String,
    pub message: String,
}

impl DeadLetterError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DeadLetterError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl DeadLetter {
    /// The original message value.
    pub fn original_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64.decode(&self.original)
    }

    pub fn encode_original(value: &[u8]) -> String {
        BASE64.encode(value)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_original_bytes_and_reads_back() {
        let letter = DeadLetter {
            stage: "enricher".into(),
            reason: "malformed_envelope".into(),
            errors: vec![DeadLetterError::new("", "not a protobuf envelope")],
            event_id: None,
            tenant: Some("acme".into()),
            source: None,
            original_topic: "tributary.raw".into(),
            original_partition: 3,
            original_offset: 42,
            failed_at: "2025-03-04T14:22:31Z".into(),
            original: DeadLetter::encode_original(b"\x00\xffraw"),
        };
        let json: serde_json::Value = serde_json::from_slice(&letter.to_json()).expect("json");
        for key in [
            "stage",
            "reason",
            "errors",
            "event_id",
            "tenant",
            "source",
            "original_topic",
            "original_partition",
            "original_offset",
            "failed_at",
            "original",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let back: DeadLetter = serde_json::from_value(json).expect("reads back");
        assert_eq!(back.original_bytes().expect("base64"), b"\x00\xffraw");
        assert_eq!(back, letter);
    }
}
