//! The enricher's metrics: what it read, emitted (complete or partial),
//! scheduled for re-enrichment, healed and dead-lettered (with the reason),
//! and how its outputs were stored. The metrics of the lookups themselves are `tributary_enrichment::internal_events`.

use std::time::Duration;

use metrics::{counter, histogram};

/// `source`: a registered platform's name, or `unknown`.
pub fn received(source: &'static str) {
    counter!("tributary_enricher_events_received_total", "source" => source).increment(1);
}

/// `status`: `complete` or `partial`.
pub fn enriched(source: &'static str, status: &'static str) {
    counter!("tributary_enricher_events_enriched_total", "source" => source, "status" => status)
        .increment(1);
}

/// An event of an object its platform sends but no dashboard needs;
/// `object`: the registry's name for it.
pub fn ignored(source: &'static str, object: &'static str) {
    counter!("tributary_enricher_events_ignored_total", "source" => source, "object" => object)
        .increment(1);
}

pub fn dead_lettered(reason: &'static str) {
    counter!("tributary_enricher_events_dead_lettered_total", "reason" => reason).increment(1);
}

pub fn enrich_latency(elapsed: Duration) {
    histogram!("tributary_enricher_enrich_duration_seconds").record(elapsed.as_secs_f64());
}

pub fn produce_failed() {
    counter!("tributary_enricher_produce_failures_total").increment(1);
}

pub fn committed(partitions: usize) {
    counter!("tributary_enricher_offset_commits_total").increment(partitions as u64);
}

/// From queuing an output to the broker's acknowledgement.
pub fn output_acknowledged(elapsed: Duration) {
    histogram!("tributary_enricher_output_ack_seconds").record(elapsed.as_secs_f64());
}

/// A partial event put on the retry topic, to be enriched again later.
pub fn retry_scheduled(attempt: u32) {
    counter!("tributary_enricher_partial_retries_total").increment(1);
    histogram!("tributary_enricher_partial_retry_attempt").record(f64::from(attempt));
}

/// A partial event came out complete when enriched again, at its `attempt`-th try.
pub fn healed(source: &'static str, attempt: u32) {
    counter!("tributary_enricher_events_healed_total", "source" => source).increment(1);
    histogram!("tributary_enricher_heal_attempts").record(f64::from(attempt));
}

/// Whether a tenant's API access worked when tried at start (1) or not (0).
pub fn api_access(source: &'static str, tenant: &str, works: bool) {
    metrics::gauge!(
        "tributary_enricher_api_access_ok",
        "source" => source,
        "tenant" => tenant.to_owned()
    )
    .set(if works { 1.0 } else { 0.0 });
}
