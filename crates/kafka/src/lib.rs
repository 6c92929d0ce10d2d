//! Kafka plumbing shared by the services.
//!
//! The settings here are the ones that must be right on both brokers the
//! project runs against: Apache Kafka in production and Tansu locally
//! (see the README's notes on the local broker).

mod admin;
mod assignment;
mod producer;

use rdkafka::ClientConfig;
use tributary_config::KafkaSettings;

pub use admin::{TopicAdmin, TopicError};
pub use assignment::{AssignmentContext, note_rebalance};
pub use producer::{Delivered, EventProducer, ProduceError};
pub use rdkafka;

/// Settings every client shares: bootstrap servers plus pass-through properties.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.librdkafka {
        config.set(key, value);
    }
    config
}

/// Producer settings: durable (acks=all, idempotent) and batched.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        // An event counts as stored only once every in-sync replica has it.
        .set("acks", "all")
        // Retries after a lost acknowledgement do not duplicate or reorder.
        .set("enable.idempotence", "true")
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger_ms.to_string())
        // Bounds how long a caller can wait for an acknowledgement.
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            settings.queue_max_messages.to_string(),
        );
    for (key, value) in &settings.librdkafka {
        config.set(key, value);
    }
    config
}

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// The largest message a producer made from `settings` sends
/// (`message.max.bytes`, librdkafka's default unless configured).
pub fn max_message_bytes(settings: &KafkaSettings) -> usize {
    settings
        .librdkafka
        .get("message.max.bytes")
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
}

/// Consumer settings for a group that commits offsets itself, after its output is durable.
pub fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    member_config(settings, group_id, None)
}

/// Consumer settings for a service's group member. With an `instance_id`
/// the member is static (KIP-345): a restarted process with the same id takes
/// its predecessor's partitions back at once instead of waiting for the
/// group to notice the old one is gone (which the local broker never does).
/// Each running instance needs its own id.
pub fn member_config(
    settings: &KafkaSettings,
    group_id: &str,
    instance_id: Option<&str>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // The local broker sleeps half of this on every fetch; low keeps latency low.
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string());
    if let Some(instance) = instance_id.filter(|i| !i.is_empty()) {
        config.set("group.instance.id", instance);
    }
    for (key, value) in &settings.librdkafka {
        config.set(key, value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_durable_and_passes_extra_properties_through() {
        let mut settings = KafkaSettings::default();
        settings
            .librdkafka
            .insert("security.protocol".into(), "ssl".into());
        let config = producer_config(&settings);
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("message.timeout.ms"), Some("4000"));
        assert_eq!(config.get("security.protocol"), Some("ssl"));
    }

    #[test]
    fn a_member_with_an_instance_id_is_static() {
        let config = member_config(&KafkaSettings::default(), "g", Some("host-a"));
        assert_eq!(config.get("group.instance.id"), Some("host-a"));
        assert_eq!(
            member_config(&KafkaSettings::default(), "g", Some("")).get("group.instance.id"),
            None
        );
    }

    #[test]
    fn consumer_never_auto_commits_and_fetches_with_a_short_wait() {
        let config = consumer_config(&KafkaSettings::default(), "g");
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(config.get("group.id"), Some("g"));
    }
}
