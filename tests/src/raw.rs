//! Raw-topic envelopes built exactly as the collector builds them.

use std::time::{SystemTime, UNIX_EPOCH};

use tributary_envelope::{ENVELOPE_VERSION, EventKeys, RawEvent, Verdict, Warning};

/// The envelope the collector would write for `body` from `tenant`'s Pipedrive
/// webhook, with its Kafka key. Panics if the body would be rejected.
pub fn pipedrive_envelope(tenant: &str, body: &[u8]) -> (String, RawEvent) {
    let checked = tributary_sources::pipedrive::prevalidate(tenant, body)
        .unwrap_or_else(|refusal| panic!("the collector would refuse this body: {refusal:?}"));
    let event = RawEvent {
        envelope_version: ENVELOPE_VERSION,
        tenant: tenant.to_owned(),
        source: "pipedrive".into(),
        received_at_micros: u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0),
        )
        .unwrap_or(0),
        event_id: checked.event_id,
        content_type: "application/json".into(),
        headers: Vec::new(),
        verdict: if checked.warnings.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::AcceptedWithWarnings
        } as i32,
        warnings: checked
            .warnings
            .iter()
            .map(|w| Warning {
                code: w.code.to_owned(),
                field: w.field.clone(),
                message: w.message.clone(),
            })
            .collect(),
        body: body.to_vec().into(),
        keys: Some(EventKeys {
            payload_version: checked.payload_version,
            object: checked.object,
            object_id: checked.object_id,
            action: checked.action,
            attempt: checked.attempt,
            occurred_at_micros: checked.occurred_at_micros,
        }),
    };
    (event.partition_key(), event)
}
