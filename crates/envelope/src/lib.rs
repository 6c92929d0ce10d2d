//! The raw-topic envelope.
//!
//! The collector wraps every accepted webhook delivery in a [`RawEvent`] and
//! produces it to the raw topic. The message schema lives in
//! `schemas/proto/tributary/envelope/v1/raw_event.proto`; this crate compiles
//! it with prost and adds the few rules every reader and writer must share.

#[allow(clippy::all, unused_qualifications)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/tributary.envelope.v1.rs"));
}

pub mod dead_letter;

pub use dead_letter::{DeadLetter, DeadLetterError};
pub use generated::{EnrichmentRetry, EventKeys, Header, RawEvent, Verdict, Warning};

/// The envelope version this build writes and the only one it reads.
pub const ENVELOPE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("raw event is not a valid protobuf envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("raw event has envelope version {found}; this build reads version {ENVELOPE_VERSION}")]
    UnsupportedVersion { found: u32 },
}

impl RawEvent {
    /// Serialises the envelope for the Kafka message value.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    /// Parses a Kafka message value, refusing envelopes of another version.
    pub fn decode_from(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let event: RawEvent = prost::Message::decode(bytes)?;
        if event.envelope_version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: event.envelope_version,
            });
        }
        Ok(event)
    }

    /// The Kafka message key: `{tenant}:{source}:{object}:{object id}`.
    ///
    /// Every event about one entity carries the same key, so Kafka keeps them
    /// on one partition and in order.
    pub fn partition_key(&self) -> String {
        let keys = self.keys.as_ref();
        partition_key(
            &self.tenant,
            &self.source,
            keys.map_or("", |k| k.object.as_str()),
            keys.map_or("", |k| k.object_id.as_str()),
        )
    }
}

/// Builds the partition key from its parts (see [`RawEvent::partition_key`]).
pub fn partition_key(tenant: &str, source: &str, object: &str, object_id: &str) -> String {
    format!("{tenant}:{source}:{object}:{object_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawEvent {
        RawEvent {
            envelope_version: ENVELOPE_VERSION,
            tenant: "acme".into(),
            source: "pipedrive".into(),
            received_at_micros: 1_700_000_000_123_456,
            event_id: "0b7c6a4e-1f7e-5a55-9a3e-2f9f3a1b2c3d".into(),
            content_type: "application/json".into(),
            headers: vec![Header {
                name: "user-agent".into(),
                value: "Pipedrive Webhooks".into(),
            }],
            verdict: Verdict::AcceptedWithWarnings as i32,
            warnings: vec![Warning {
                code: "transaction_pending".into(),
                field: "meta.trans_pending".into(),
                message: "commit pending".into(),
            }],
            body: bytes::Bytes::from_static(b"{\"a\":1}\xff\x00 raw bytes stay raw"),
            keys: Some(EventKeys {
                payload_version: "1".into(),
                object: "deal".into(),
                object_id: "42".into(),
                action: "updated".into(),
                attempt: 2,
                occurred_at_micros: 1_699_999_999_000_000,
            }),
            enrichment_retry: None,
        }
    }

    #[test]
    fn round_trips_every_field_and_keeps_body_bytes() {
        let event = sample();
        let decoded = RawEvent::decode_from(&event.encode_to_vec()).expect("decodes");
        assert_eq!(decoded, event);
        assert_eq!(decoded.body, event.body);
    }

    #[test]
    fn refuses_other_envelope_versions() {
        let mut event = sample();
        event.envelope_version = 2;
        let err = RawEvent::decode_from(&event.encode_to_vec()).expect_err("version 2 refused");
        assert!(matches!(
            err,
            EnvelopeError::UnsupportedVersion { found: 2 }
        ));
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            RawEvent::decode_from(b"\xff\xff\xff\xff"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn partition_key_names_tenant_source_object_and_id() {
        assert_eq!(sample().partition_key(), "acme:pipedrive:deal:42");
    }
}
