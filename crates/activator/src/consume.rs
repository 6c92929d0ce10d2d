//! Reading the enriched topic into batches, loading them, committing.
//!
//! One loop: read messages into the current batch until it holds
//! `batch_max_rows` events or its first one has waited `batch_max_age_ms`,
//! then load it: de-duplicate against ClickHouse, insert, store the dead
//! letters, and only then commit the batch's offsets. A failed load is
//! retried with backoff (reading pauses meanwhile); the batch is never
//! dropped, and on shutdown an unloaded batch is simply left uncommitted.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::watch;
use tributary_kafka::AssignmentContext;

use crate::batch::Batch;
use crate::load::ClickHouse;
use crate::{Activator, Incoming, Verdict, internal_events};

pub async fn run(
    activator: &Activator,
    clickhouse: &ClickHouse,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = &activator.config.activator;
    let topic = activator.config.topics.enriched.as_str();
    let consumer: StreamConsumer<AssignmentContext> = tributary_kafka::member_config(
        &activator.config.kafka,
        &settings.group_id,
        Some(&settings.instance_id),
    )
    .create_with_context(AssignmentContext {
        topic: topic.to_owned(),
        gauge: "tributary_activator_assigned_partitions",
    })?;
    consumer.subscribe(&[topic])?;
    tracing::info!(topic, group = %settings.group_id, "activator consuming");

    let max_age = Duration::from_millis(settings.batch_max_age_ms);
    let snapshot_every = Duration::from_secs(settings.snapshot_interval_seconds.max(1));
    let mut last_snapshot: Option<Instant> = None;
    let mut last_retention: Option<Instant> = None;
    let mut batch = Batch::default();
    let mut batch_started: Option<Instant> = None;
    loop {
        let wait = batch_started
            .map(|started| max_age.saturating_sub(started.elapsed()))
            .unwrap_or(Duration::from_secs(3600));
        let due = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if !batch.is_empty() {
                    load(activator, clickhouse, &consumer, topic, &mut batch, &mut shutdown, CommitMode::Sync).await;
                }
                return Ok(());
            }
            read = tokio::time::timeout(wait, consumer.recv()) => match read {
                Ok(Ok(message)) => {
                    let incoming = Incoming {
                        topic,
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        payload: message.payload().unwrap_or_default(),
                    };
                    batch.read(incoming.partition, incoming.offset);
                    match activator.judge(clickhouse, &incoming) {
                        Verdict::Accepted(event) => batch.accept(*event),
                        Verdict::DeadLetter(letter) => batch.dead_letter(incoming.key, *letter),
                    }
                    batch_started.get_or_insert_with(Instant::now);
                    batch.messages >= settings.batch_max_rows
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "reading the enriched topic failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    false
                }
                Err(_waited) => !batch.is_empty(),
            }
        };
        if due {
            if !load(
                activator,
                clickhouse,
                &consumer,
                topic,
                &mut batch,
                &mut shutdown,
                CommitMode::Async,
            )
            .await
            {
                return Ok(());
            }
            batch_started = None;
        }
        if last_snapshot.is_none_or(|at| at.elapsed() >= snapshot_every) {
            match clickhouse.snapshot_pipeline().await {
                Ok(()) => last_snapshot = Some(Instant::now()),
                Err(err) => tracing::warn!(error = %err, "refreshing the pipeline snapshot failed"),
            }
        }
        if last_retention.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            last_retention = Some(Instant::now());
            if let Some(first_kept) = activator.first_kept_day(chrono::Utc::now()) {
                match clickhouse.drop_partitions_before(first_kept).await {
                    Ok(dropped) if !dropped.is_empty() => {
                        tracing::info!(?dropped, %first_kept, "dropped partitions past retention")
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "dropping old partitions failed"),
                }
            }
        }
    }
}

/// Loads `batch` and commits its offsets, retrying until it succeeds.
/// Returns false if shutdown came first (nothing committed).
async fn load(
    activator: &Activator,
    clickhouse: &ClickHouse,
    consumer: &StreamConsumer<AssignmentContext>,
    topic: &str,
    batch: &mut Batch,
    shutdown: &mut watch::Receiver<bool>,
    mode: CommitMode,
) -> bool {
    let settings = &activator.config.activator;
    let mut delay = Duration::from_millis(settings.retry_initial_ms);
    loop {
        match activator.load_batch(clickhouse, batch).await {
            Ok(()) => break,
            Err((what, err)) => {
                internal_events::load_failed(what);
                tracing::warn!(
                    what,
                    error = format!("{err:#}"),
                    events = batch.messages,
                    retry_in = ?delay,
                    "loading a batch failed; offsets stay uncommitted"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return false,
        }
        delay = (delay * 2).min(Duration::from_millis(settings.retry_max_ms));
    }
    let mut offsets = TopicPartitionList::new();
    for (partition, offset) in &batch.offsets {
        let _ =
            offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(offset + 1));
    }
    match consumer.commit(&offsets, mode) {
        Ok(()) => internal_events::committed(offsets.count()),
        // The next owner re-reads from the previous commit; de-duplication
        // makes that harmless.
        Err(err) => tracing::warn!(error = %err, "committing offsets failed"),
    }
    *batch = Batch::default();
    true
}
