//! What a consumer group member was given: logged, and kept as a gauge so
//! operators (and the demo) can tell a member that is reading from one still
//! waiting for the group to assign it partitions.

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// Logs a rebalance and sets `gauge` to the number of partitions held.
pub fn note_rebalance(gauge: &'static str, topic: &str, rebalance: &Rebalance<'_>) {
    match rebalance {
        Rebalance::Assign(assigned) => {
            let partitions: Vec<i32> = assigned.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(topic, ?partitions, "partitions assigned");
            metrics::gauge!(gauge).set(partitions.len() as f64);
        }
        Rebalance::Revoke(_) => {
            tracing::info!(topic, "partitions revoked");
            metrics::gauge!(gauge).set(0.0);
        }
        Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance failed"),
    }
}

/// A consumer context that only notes rebalances (see [`note_rebalance`]).
pub struct AssignmentContext {
    pub topic: String,
    pub gauge: &'static str,
}

impl ClientContext for AssignmentContext {}

impl ConsumerContext for AssignmentContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        note_rebalance(self.gauge, &self.topic, rebalance);
    }
}
