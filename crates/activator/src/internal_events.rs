//! The activator's metrics: what it read, loaded, skipped as a duplicate and
//! dead-lettered (with the reason), and how its loads went.

use std::time::Duration;

use metrics::{counter, histogram};

pub fn received() {
    counter!("tributary_activator_events_received_total").increment(1);
}

pub fn loaded(template: &str, first_copy: bool) {
    let copy = if first_copy { "first" } else { "completion" };
    counter!("tributary_activator_events_loaded_total", "template" => template.to_owned(), "copy" => copy)
        .increment(1);
}

/// Already stored (a redelivery or a replay).
pub fn duplicate() {
    counter!("tributary_activator_events_duplicate_total").increment(1);
}

pub fn dead_lettered(reason: &'static str) {
    counter!("tributary_activator_events_dead_lettered_total", "reason" => reason).increment(1);
}

pub fn batch_loaded(rows: usize, elapsed: Duration) {
    histogram!("tributary_activator_batch_rows").record(rows as f64);
    histogram!("tributary_activator_load_seconds").record(elapsed.as_secs_f64());
}

/// From the collector receiving an event to its row being inserted.
pub fn visible_after(elapsed: Duration) {
    histogram!("tributary_activator_end_to_end_seconds").record(elapsed.as_secs_f64());
}

/// `what`: `clickhouse` or `dead_letter`.
pub fn load_failed(what: &'static str) {
    counter!("tributary_activator_load_failures_total", "what" => what).increment(1);
}

pub fn committed(partitions: usize) {
    counter!("tributary_activator_offset_commits_total").increment(partitions as u64);
}
