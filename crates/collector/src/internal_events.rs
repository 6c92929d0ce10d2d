//! The collector's metrics, in one place: what it received, accepted and
//! rejected (with the reason), and how long the broker took to acknowledge;
//! and the log of refusals, rate-limited.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// How often a refusal of one source and reason is logged at most.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Per source and reason: when a refusal was last logged, and how many
/// were not logged since.
type RefusalLog = HashMap<(&'static str, &'static str), (Instant, u64)>;

/// Logs a refusal at info level, so an operator sees why deliveries are
/// refused without debug logging: the first of each source and reason,
/// then at most one every [`REFUSAL_LOG_EVERY`], saying how many were not
/// logged meanwhile (the metric counts them all).
pub fn log_refusal(
    source: &'static str,
    reason: &'static str,
    tenant: &str,
    error: &dyn std::fmt::Display,
) {
    static LOGGED: OnceLock<Mutex<RefusalLog>> = OnceLock::new();
    let unlogged = {
        let mut logged = LOGGED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match logged.get_mut(&(source, reason)) {
            Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {
                *skipped += 1;
                return;
            }
            Some((at, skipped)) => {
                *at = now;
                std::mem::take(skipped)
            }
            None => {
                logged.insert((source, reason), (now, 0));
                0
            }
        }
    };
    tracing::info!(source, reason, tenant, error = %error, unlogged, "delivery rejected");
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
