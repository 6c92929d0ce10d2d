//! Reading the enriched topic into batches, loading them, committing.
//!
//! Two loops joined in one task. The reader reads messages into the current
//! batch and judges them (template validation, conversion); a batch is
//! handed over once it holds `batch_max_rows` events or its first one has
//! waited `batch_max_age_ms` and the loader is free (while the loader is
//! busy, the batch keeps filling up to its row limit). The loader loads one
//! batch at a time, in order: de-duplicate against ClickHouse, insert, store
//! the dead letters, and only then commit the batch's offsets. So a batch
//! fills while the one before it loads, and each load, its ledger lookup
//! included, starts after the previous one has finished: de-duplication sees
//! every earlier batch. A failed load is retried with backoff (reading stops
//! at the row limit meanwhile); the batch is never dropped, and on shutdown
//! an unloaded batch is simply left uncommitted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tributary_kafka::AssignmentContext;

use crate::batch::Batch;
use crate::load::ClickHouse;
use crate::{Activator, Incoming, Verdict, internal_events};

type EnrichedConsumer = StreamConsumer<AssignmentContext>;

/// A batch for the loader, with the permit that marks the loader busy.
type Handoff = (Batch, OwnedSemaphorePermit, CommitMode);

pub async fn run(
    activator: &Activator,
    clickhouse: &ClickHouse,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = &activator.config.activator;
    let topic = activator.config.topics.enriched.as_str();
    let consumer: EnrichedConsumer = tributary_kafka::member_config(
        &activator.config.kafka,
        &settings.group_id,
        Some(&settings.instance_id),
    )
    .create_with_context(AssignmentContext::new(
        topic,
        "tributary_activator_assigned_partitions",
    ))?;
    consumer.subscribe(&[topic])?;
    tracing::info!(topic, group = %settings.group_id, "activator consuming");

    let (to_loader, from_reader) = mpsc::channel::<Handoff>(1);
    let loader_free = Arc::new(Semaphore::new(1));
    let reader = read_batches(
        activator,
        &consumer,
        topic,
        shutdown.clone(),
        to_loader,
        loader_free,
    );
    let loader = load_batches(
        activator,
        clickhouse,
        &consumer,
        topic,
        shutdown,
        from_reader,
    );
    let (read, ()) = tokio::join!(reader, loader);
    read
}

async fn read_batches(
    activator: &Activator,
    consumer: &EnrichedConsumer,
    topic: &str,
    mut shutdown: watch::Receiver<bool>,
    to_loader: mpsc::Sender<Handoff>,
    loader_free: Arc<Semaphore>,
) -> anyhow::Result<()> {
    let settings = &activator.config.activator;
    let max_age = Duration::from_millis(settings.batch_max_age_ms);
    let mut batch = Batch::default();
    let mut batch_started: Option<Instant> = None;
    loop {
        let aged = batch_started.is_some_and(|started| started.elapsed() >= max_age);
        let full = batch.messages >= settings.batch_max_rows;
        let wait = match batch_started {
            Some(started) if !aged => max_age - started.elapsed(),
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if !batch.is_empty() {
                    let permit = loader_free.clone().acquire_owned().await?;
                    // The loader may have stopped already: then the batch stays uncommitted.
                    let _ = to_loader.send((batch, permit, CommitMode::Sync)).await;
                }
                return Ok(());
            }
            permit = loader_free.clone().acquire_owned(), if aged || full => {
                let handoff = (std::mem::take(&mut batch), permit?, CommitMode::Async);
                if to_loader.send(handoff).await.is_err() {
                    return Ok(());
                }
                batch_started = None;
            }
            read = tokio::time::timeout(wait, consumer.recv()), if !full => match read {
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
                    match activator.judge(&incoming) {
                        Verdict::Accepted(event) => batch.accept(*event),
                        Verdict::DeadLetter(letter) => batch.dead_letter(incoming.key, *letter),
                    }
                    batch_started.get_or_insert_with(Instant::now);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "reading the enriched topic failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // The batch's age is up: the next turn hands it over.
                Err(_waited) => {}
            },
        }
    }
}

/// Loads the batches handed over, in order, and runs the periodic jobs
/// between loads (and on their own while no batch comes).
async fn load_batches(
    activator: &Activator,
    clickhouse: &ClickHouse,
    consumer: &EnrichedConsumer,
    topic: &str,
    mut shutdown: watch::Receiver<bool>,
    mut from_reader: mpsc::Receiver<Handoff>,
) {
    let settings = &activator.config.activator;
    let snapshot_every = Duration::from_secs(settings.snapshot_interval_seconds.max(1));
    let mut last_snapshot: Option<Instant> = None;
    let mut last_retention: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            next = from_reader.recv() => match next {
                Some(handoff) => Some(handoff),
                // The reader stopped and everything it handed over is loaded.
                None => return,
            },
            _ = tokio::time::sleep(snapshot_every) => None,
        };
        if let Some((mut batch, permit, mode)) = next {
            if !load(
                activator,
                clickhouse,
                consumer,
                topic,
                &mut batch,
                &mut shutdown,
                mode,
            )
            .await
            {
                return;
            }
            drop(permit);
        } else {
            // Quiet: no next commit is coming to take a failed one along.
            commit_failed_again(consumer, topic);
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

/// Commits the offsets of commits that failed, if any.
fn commit_failed_again(consumer: &EnrichedConsumer, topic: &str) {
    let positions = consumer.context().with_failed_commits(&[]);
    if !positions.is_empty() {
        commit(consumer, topic, &positions, CommitMode::Sync);
    }
}

/// Commits `positions` (the next offset to read, per partition); if that
/// fails they are kept for the next commit.
fn commit(consumer: &EnrichedConsumer, topic: &str, positions: &[(i32, i64)], mode: CommitMode) {
    let mut offsets = TopicPartitionList::new();
    for (partition, position) in positions {
        let _ = offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*position));
    }
    match consumer.commit(&offsets, mode) {
        Ok(()) => internal_events::committed(offsets.count()),
        Err(err) => consumer.context().commit_failed(positions, &err),
    }
}

/// Loads `batch` and commits its offsets, retrying until it succeeds.
/// Returns false if shutdown came first (nothing committed).
async fn load(
    activator: &Activator,
    clickhouse: &ClickHouse,
    consumer: &EnrichedConsumer,
    topic: &str,
    batch: &mut Batch,
    shutdown: &mut watch::Receiver<bool>,
    mode: CommitMode,
) -> bool {
    let settings = &activator.config.activator;
    let mut delay = Duration::from_millis(settings.retry_initial_ms);
    loop {
        match activator.load_isolating(clickhouse, batch).await {
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
    let positions: Vec<(i32, i64)> = batch
        .offsets
        .iter()
        .map(|(partition, offset)| (*partition, offset + 1))
        .collect();
    // A commit that failed earlier goes again with this one. Until one
    // succeeds, a restart re-reads from the last commit; de-duplication
    // makes that harmless.
    let positions = consumer.context().with_failed_commits(&positions);
    commit(consumer, topic, &positions, mode);
    *batch = Batch::default();
    true
}
