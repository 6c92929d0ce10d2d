//! Raw-topic envelopes built exactly as the collector builds them.

use std::time::{SystemTime, UNIX_EPOCH};

use tributary_envelope::{ENVELOPE_VERSION, EventKeys, RawEvent, Verdict, Warning};

/// The envelope the collector would write for `body` from `tenant`'s Pipedrive
/// webhook, with its Kafka key. Panics if the body would be rejected.
pub fn pipedrive_envelope(tenant: &str, body: &[u8]) -> (String, RawEvent) {
    let checked = tributary_sources::pipedrive::prevalidate(tenant, body)
        .unwrap_or_else(|refusal| panic!("the collector would refuse this body: {refusal:?}"));
    let event = envelope(
        tenant,
        "pipedrive",
        body.to_vec().into(),
        checked,
        now_micros(),
    );
    (event.partition_key(), event)
}

/// The envelope of one accepted event of `source`: its bytes and what the
/// source's checks found, received at `received_at_micros`.
pub fn envelope(
    tenant: &str,
    source: &str,
    body: bytes::Bytes,
    checked: tributary_sources::Prevalidated,
    received_at_micros: u64,
) -> RawEvent {
    RawEvent {
        envelope_version: ENVELOPE_VERSION,
        tenant: tenant.to_owned(),
        source: source.to_owned(),
        received_at_micros,
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
        body,
        keys: Some(EventKeys {
            payload_version: checked.payload_version,
            object: checked.object,
            object_id: checked.object_id,
            action: checked.action,
            attempt: checked.attempt,
            occurred_at_micros: checked.occurred_at_micros,
        }),
        enrichment_retry: None,
    }
}

fn now_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0),
    )
    .unwrap_or(0)
}
