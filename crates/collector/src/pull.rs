//! The collector's pull subscriptions (Salesforce Change Data Capture): each
//! runs as its own task for as long as the collector serves, storing its
//! events on the raw topic through the same producer as the webhooks and
//! checkpointing only after the broker has them.

use std::sync::Arc;

use tributary_envelope::RawEvent;
use tributary_kafka::EventProducer;
use tributary_sources::BoxFuture;
use tributary_sources::pull::{Checkpoints, PullSink, PullSource};

/// Stores pulled events on the raw topic: `Ok` once every one is acknowledged.
struct RawTopic {
    producer: Arc<EventProducer>,
    topic: String,
}

impl PullSink for RawTopic {
    fn store(&self, events: Vec<RawEvent>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut acknowledgements = Vec::with_capacity(events.len());
            for event in &events {
                let ack = self
                    .producer
                    .enqueue(&self.topic, &event.partition_key(), &event.encode_to_vec())
                    .map_err(|err| err.to_string())?;
                acknowledgements.push(ack);
            }
            for ack in acknowledgements {
                ack.await.map_err(|err| err.to_string())?;
            }
            Ok(())
        })
    }
}

/// Starts every subscription; they stop when the returned tasks are aborted
/// (a subscription stopped between storing and checkpointing reads those
/// events again on its next start, and they are dropped as duplicates).
pub(crate) fn start(
    subscriptions: Vec<Box<dyn PullSource>>,
    checkpoints: Option<Checkpoints>,
    producer: Arc<EventProducer>,
    topic: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(checkpoints) = checkpoints else {
        return Vec::new();
    };
    let sink = Arc::new(RawTopic {
        producer,
        topic: topic.to_owned(),
    });
    subscriptions
        .into_iter()
        .map(|subscription| {
            let sink = sink.clone();
            let checkpoints = checkpoints.clone();
            tracing::info!(
                subscription = subscription.name(),
                "pull subscription starting"
            );
            tokio::spawn(async move { subscription.run(sink.as_ref(), &checkpoints).await })
        })
        .collect()
}
