//! What the enricher, the activator and the operator tools read from Kafka:
//! arbitrary bytes as a raw-topic envelope (protobuf) and as a dead-letter
//! record (JSON). Whatever decodes must survive a re-encode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_envelope::{DeadLetter, ENVELOPE_VERSION, EnvelopeError, RawEvent};

fuzz_target!(|data: &[u8]| {
    match RawEvent::decode_from(data) {
        Ok(event) => {
            assert_eq!(event.envelope_version, ENVELOPE_VERSION);
            let encoded = event.encode_to_vec();
            let again = RawEvent::decode_from(&encoded).expect("a re-encoded envelope decodes");
            assert_eq!(again, event);
            assert_eq!(again.encode_to_vec(), encoded, "encoding is deterministic");
            let _ = event.partition_key();
        }
        Err(EnvelopeError::UnsupportedVersion { found }) => assert_ne!(found, ENVELOPE_VERSION),
        Err(EnvelopeError::Malformed(_)) => {}
    }

    if let Ok(letter) = serde_json::from_slice::<DeadLetter>(data) {
        let json = letter.to_json();
        assert!(!json.is_empty(), "a dead letter always serialises");
        let again: DeadLetter =
            serde_json::from_slice(&json).expect("a re-encoded dead letter reads");
        assert_eq!(again, letter);
        if let Ok(original) = letter.original_bytes() {
            // The standard alphabet with canonical padding: one text per value.
            assert_eq!(DeadLetter::encode_original(&original), letter.original);
        }
    }
});
