//! What a consumer group member was given: logged, and kept as a gauge so
//! operators (and the demo) can tell a member that is reading from one still
//! waiting for the group to assign it partitions; and the commits that
//! failed, retried with the next one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

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

/// A consumer context that notes rebalances (see [`note_rebalance`]) and
/// keeps the offsets of commits that failed, for the next commit to retry.
pub struct AssignmentContext {
    pub topic: String,
    pub gauge: &'static str,
    failed_commits: Mutex<BTreeMap<i32, i64>>,
}

impl AssignmentContext {
    pub fn new(topic: &str, gauge: &'static str) -> Self {
        AssignmentContext {
            topic: topic.to_owned(),
            gauge,
            failed_commits: Mutex::default(),
        }
    }

    /// A commit of `offsets` failed with `error`: logged, and they are
    /// retried with the next commit.
    pub fn commit_failed(&self, offsets: &[(i32, i64)], error: &dyn std::fmt::Display) {
        {
            let mut failed = self.failed();
            for (partition, offset) in offsets {
                let kept = failed.entry(*partition).or_insert(*offset);
                *kept = (*kept).max(*offset);
            }
        }
        tracing::warn!(
            error = %error,
            ?offsets,
            "offset commit failed; retrying with the next commit"
        );
    }

    /// `offsets` to commit, with failed commits of other partitions (or of
    /// later offsets) added; those are no longer kept.
    pub fn with_failed_commits(&self, offsets: &[(i32, i64)]) -> Vec<(i32, i64)> {
        let mut merged: BTreeMap<i32, i64> = std::mem::take(&mut *self.failed());
        for (partition, offset) in offsets {
            let kept = merged.entry(*partition).or_insert(*offset);
            *kept = (*kept).max(*offset);
        }
        merged.into_iter().collect()
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, i64>> {
        self.failed_commits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for AssignmentContext {}

impl ConsumerContext for AssignmentContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            // Not ours to commit any more.
            let mut failed = self.failed();
            for element in revoked.elements() {
                failed.remove(&element.partition());
            }
        }
        note_rebalance(self.gauge, &self.topic, rebalance);
    }

    /// An asynchronous commit's outcome: a failed one is kept for the next
    /// commit, and the log says which offsets and why.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(err) = result else {
            return;
        };
        let failed: Vec<(i32, i64)> = offsets
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect();
        self.commit_failed(&failed, &err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_goes_with_the_next_one_unless_a_later_offset_replaces_it() {
        let context = AssignmentContext::new("enriched", "gauge");
        context.commit_failed(&[(0, 10), (1, 20)], &"refused");
        assert_eq!(
            context.with_failed_commits(&[(1, 25), (2, 5)]),
            [(0, 10), (1, 25), (2, 5)]
        );
        assert_eq!(
            context.with_failed_commits(&[(2, 6)]),
            [(2, 6)],
            "taken once"
        );
        context.commit_failed(&[(3, 30)], &"refused");
        assert_eq!(context.with_failed_commits(&[(3, 12)]), [(3, 30)]);
    }
}
