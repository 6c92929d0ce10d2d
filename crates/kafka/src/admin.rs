//! Topic checks and creation.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tributary_config::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("broker {brokers} unreachable: {source}")]
    Unreachable { brokers: String, source: KafkaError },
    #[error("topic {topic} does not exist on {brokers}")]
    Missing { topic: String, brokers: String },
    #[error("creating topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
}

/// Creates and checks topics.
pub struct TopicAdmin {
    client: Arc<AdminClient<DefaultClientContext>>,
    brokers: String,
    timeout: Duration,
}

impl TopicAdmin {
    pub fn new(settings: &KafkaSettings) -> Result<Self, TopicError> {
        let client = crate::client_config(settings).create()?;
        Ok(TopicAdmin {
            client: Arc::new(client),
            brokers: settings.brokers.clone(),
            timeout: Duration::from_millis(u64::from(settings.metadata_timeout_ms)),
        })
    }

    /// Partition count of `topic`, or [`TopicError::Missing`].
    pub async fn partitions(&self, topic: &str) -> Result<usize, TopicError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || {
            client.inner().fetch_metadata(Some(&name), timeout)
        })
        .await
        .map_err(|e| TopicError::Create {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?
        .map_err(|source| TopicError::Unreachable {
            brokers: self.brokers.clone(),
            source,
        })?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        match found {
            Some(t) => Ok(t.partitions().len()),
            None => Err(TopicError::Missing {
                topic: topic.to_owned(),
                brokers: self.brokers.clone(),
            }),
        }
    }

    /// Creates `topic` unless it exists. Returns whether it was created.
    pub async fn ensure(
        &self,
        topic: &str,
        partitions: i32,
        replication: i32,
    ) -> Result<bool, TopicError> {
        self.ensure_with(topic, partitions, replication, &[]).await
    }

    /// Like [`TopicAdmin::ensure`], creating the topic with these topic
    /// configs (`max.message.bytes`, `retention.ms`, ...). An existing
    /// topic is left as it is.
    pub async fn ensure_with(
        &self,
        topic: &str,
        partitions: i32,
        replication: i32,
        configs: &[(&str, String)],
    ) -> Result<bool, TopicError> {
        let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        for (key, value) in configs {
            new_topic = new_topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self.client.create_topics([&new_topic], &options).await?;
        // One topic was asked for, so there is one result.
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(true),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(false),
            Some(Err((name, code))) => Err(TopicError::Create {
                topic: name,
                reason: code.to_string(),
            }),
        }
    }
}
