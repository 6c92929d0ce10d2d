//! `tributary create-topics`.

use clap::Args;
use tributary_config::{KafkaSettings, TopicSettings};
use tributary_kafka::TopicAdmin;

#[derive(Args)]
pub struct CreateTopicsArgs {
    /// Partitions of each new topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replicas of each partition (3 on a production cluster; 1 on one broker).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Replicas that must have a message before it counts as stored
    /// (`min.insync.replicas`); default 2 with 3 or more replicas, else 1.
    #[arg(long)]
    min_insync_replicas: Option<i32>,
    /// How long the raw topic keeps events, in hours: how far back a replay
    /// can rebuild the tables (default 7 days; -1 keeps them for ever).
    #[arg(long, default_value_t = 168)]
    raw_retention_hours: i64,
}

/// The topic configs a new topic of the pipeline gets.
fn topic_configs(
    args: &CreateTopicsArgs,
    max_message_bytes: usize,
    raw: bool,
) -> Vec<(&'static str, String)> {
    let min_insync = args
        .min_insync_replicas
        .unwrap_or(if args.replication_factor >= 3 { 2 } else { 1 });
    let mut configs = vec![
        // Whatever the collector produces for a body under its limit.
        ("max.message.bytes", max_message_bytes.to_string()),
        ("min.insync.replicas", min_insync.to_string()),
    ];
    if raw {
        let retention_ms = if args.raw_retention_hours < 0 {
            -1
        } else {
            args.raw_retention_hours.saturating_mul(3_600_000)
        };
        configs.push(("retention.ms", retention_ms.to_string()));
    }
    configs
}

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    max_body_bytes: usize,
    args: CreateTopicsArgs,
) -> anyhow::Result<()> {
    let admin = TopicAdmin::new(kafka)?;
    let max_message_bytes = tributary_collector::delivery::largest_message_bytes(max_body_bytes);
    for topic in topics.all() {
        let configs = topic_configs(&args, max_message_bytes, *topic == topics.raw);
        if admin
            .ensure_with(topic, args.partitions, args.replication_factor, &configs)
            .await?
        {
            println!("created {topic} ({} partitions)", args.partitions);
        } else {
            println!(
                "{topic} exists ({} partitions)",
                admin.partitions(topic).await?
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(replication_factor: i32, raw_retention_hours: i64) -> CreateTopicsArgs {
        CreateTopicsArgs {
            partitions: 6,
            replication_factor,
            min_insync_replicas: None,
            raw_retention_hours,
        }
    }

    #[test]
    fn three_replicas_need_two_in_sync_and_the_raw_topic_keeps_a_week() {
        let configs = topic_configs(&args(3, 168), 1_500_000, true);
        assert_eq!(
            configs,
            [
                ("max.message.bytes", "1500000".to_owned()),
                ("min.insync.replicas", "2".to_owned()),
                ("retention.ms", (168 * 3_600_000_i64).to_string()),
            ]
        );
        let one_broker = topic_configs(&args(1, -1), 1_500_000, false);
        assert_eq!(one_broker[1], ("min.insync.replicas", "1".to_owned()));
        assert_eq!(one_broker.len(), 2, "retention is the raw topic's");
        assert_eq!(topic_configs(&args(1, -1), 1, true)[2].1, "-1");
    }
}
