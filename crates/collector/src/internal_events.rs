//! The collector's metrics, in one place: what it received, accepted and
//! rejected (with the reason), and how long the broker took to acknowledge.

use std::time::Duration;

use metrics::{counter, histogram};
use tributary_sources::Warning;

/// Source label for requests whose source is not registered (bounded cardinality).
pub const UNKNOWN_SOURCE: &str = "unknown";

pub fn received(source: &'static str, bytes: usize) {
    counter!("tributary_collector_events_received_total", "source" => source).increment(1);
    counter!("tributary_collector_bytes_received_total", "source" => source)
        .increment(bytes as u64);
}

pub fn accepted(source: &'static str, warnings: &[Warning]) {
    counter!("tributary_collector_events_accepted_total", "source" => source).increment(1);
    for warning in warnings {
        counter!("tributary_collector_event_warnings_total", "source" => source, "code" => warning.code)
            .increment(1);
    }
}

pub fn rejected(source: &'static str, reason: &'static str) {
    counter!("tributary_collector_events_rejected_total", "source" => source, "reason" => reason)
        .increment(1);
}

/// An element of a delivery stored on the dead-letter topic instead of the raw topic.
pub fn dead_lettered(source: &'static str, reason: &'static str) {
    counter!("tributary_collector_events_dead_lettered_total", "source" => source, "reason" => reason)
        .increment(1);
}

pub fn produce_latency(source: &'static str, elapsed: Duration, stored: bool) {
    let outcome = if stored { "stored" } else { "failed" };
    histogram!("tributary_collector_produce_latency_seconds", "source" => source, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}
