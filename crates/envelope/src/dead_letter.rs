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
    /// The input message value, base64; empty when `original_by_reference`.
    pub original: String,
    /// The input was too large to embed: it is read from `original_topic`
    /// at `original_partition`/`original_offset`, while that topic's
    /// retention keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_by_reference: bool,
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

    /// Sets `original` to `value`, or, if the record would then be larger
    /// than `max_message_bytes` (the producer's `message.max.bytes`) and the
    /// input has a place on its topic, refers to it there instead: a dead
    /// letter the broker refuses would stall its stage.
    pub fn with_original(mut self, value: &[u8], max_message_bytes: usize) -> Self {
        self.original.clear();
        self.original_by_reference = false;
        let without = self.to_json().len();
        if without + encoded_len(value.len()) > max_message_bytes && self.original_offset >= 0 {
            self.original_by_reference = true;
        } else {
            self.original = Self::encode_original(value);
        }
        self
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Base64 length of `len` bytes, padded.
pub fn encoded_len(len: usize) -> usize {
    len.div_ceil(3) * 4
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
            original_by_reference: false,
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

    #[test]
    fn an_original_too_large_to_embed_is_referred_to_by_its_place() {
        let letter = DeadLetter {
            stage: "enricher".into(),
            reason: "output_refused".into(),
            errors: vec![],
            event_id: None,
            tenant: None,
            source: None,
            original_topic: "tributary.raw".into(),
            original_partition: 1,
            original_offset: 7,
            failed_at: "2025-03-04T14:22:31Z".into(),
            original: String::new(),
            original_by_reference: false,
        };
        let value = vec![b'x'; 3_000];
        let fits = letter.clone().with_original(&value, 5_000);
        assert!(!fits.original_by_reference);
        assert_eq!(fits.original_bytes().expect("base64"), value);
        assert!(fits.to_json().len() <= 5_000);
        // The size is known exactly: a limit one byte smaller refers instead.
        let exact = fits.to_json().len();
        assert!(
            !letter
                .clone()
                .with_original(&value, exact)
                .original_by_reference
        );
        assert!(
            letter
                .clone()
                .with_original(&value, exact - 1)
                .original_by_reference
        );

        let referred = letter.clone().with_original(&value, 4_000);
        assert!(referred.original_by_reference && referred.original.is_empty());
        let json: serde_json::Value = serde_json::from_slice(&referred.to_json()).expect("json");
        assert_eq!(json["original_by_reference"], true);
        assert!(referred.to_json().len() < 4_000);

        // Without a place to refer to, the original is kept whatever its size.
        let nowhere = DeadLetter {
            original_partition: -1,
            original_offset: -1,
            ..letter
        };
        assert!(!nowhere.with_original(&value, 4_000).original_by_reference);
    }
}
