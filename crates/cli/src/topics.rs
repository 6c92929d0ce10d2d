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
}

pub async fn run(
    kafka: &KafkaSettings,
    topics: &TopicSettings,
    args: CreateTopicsArgs,
) -> anyhow::Result<()> {
    let admin = TopicAdmin::new(kafka)?;
    for topic in [&topics.raw, &topics.enriched, &topics.dead_letter] {
        if admin
            .ensure(topic, args.partitions, args.replication_factor)
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
