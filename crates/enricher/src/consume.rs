//! Reading the raw topic, enriching in ordered lanes, producing, committing.
//! The retry topic is read the same way by a second consumer group, each
//! message waiting in its lane until its retry time has come.
//!
//! Each message goes to a lane chosen by its key, so the events of one
//! entity are handled one after another and queued to the producer in order,
//! while other entities' events proceed in other lanes. A message counts as
//! done when its output (the enriched event, or its dead-letter record) is
//! acknowledged by the broker; offsets are committed up to the lowest message
//! not yet done (see [`OffsetTracker`]). If an output cannot be stored, the
//! session stops reading, lets what is in flight finish, commits what is
//! safe and starts over from the committed offsets.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::{Notify, mpsc, watch};
use tributary_kafka::ProduceError;

use crate::Enricher;
use crate::internal_events;
use crate::offsets::OffsetTracker;

/// A message read from the raw or the retry topic.
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// What to write for one message.
pub struct Output {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
}

/// A topic the enricher reads, and as whom.
#[derive(Clone)]
struct Feed {
    topic: String,
    group_id: String,
    instance_id: String,
    /// Messages wait for their `enrichment_retry.not_before_micros`.
    delayed: bool,
}

impl Feed {
    fn raw(enricher: &Enricher) -> Self {
        let settings = &enricher.config.enricher;
        Feed {
            topic: enricher.config.topics.raw.clone(),
            group_id: settings.group_id.clone(),
            instance_id: settings.instance_id.clone(),
            delayed: false,
        }
    }

    fn retry(enricher: &Enricher) -> Self {
        let settings = &enricher.config.enricher;
        Feed {
            topic: enricher.config.topics.retry.clone(),
            group_id: settings.retry_group_id(),
            instance_id: if settings.instance_id.is_empty() {
                String::new()
            } else {
                format!("{}.retry", settings.instance_id)
            },
            delayed: true,
        }
    }
}

enum SessionEnd {
    Shutdown,
    OutputFailed,
}

/// Shared by a session's loop, lanes and delivery waits.
struct Session {
    tracker: Mutex<OffsetTracker>,
    failed: AtomicBool,
    outstanding: AtomicUsize,
    progress: Notify,
    /// Turns true when the session stops reading: lanes stop waiting.
    stopping: watch::Sender<bool>,
}

impl Session {
    fn tracker(&self) -> std::sync::MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Commits what is safe for partitions being taken away, then forgets them.
struct RebalanceContext {
    session: Mutex<Option<Arc<Session>>>,
    topic: String,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        tributary_kafka::note_rebalance(
            "tributary_enricher_assigned_partitions",
            &self.topic,
            rebalance,
        );
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let Some(session) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let partitions: Vec<i32> = revoked.elements().iter().map(|e| e.partition()).collect();
        let mut tracker = session.tracker();
        let mut commits = TopicPartitionList::new();
        for partition in &partitions {
            if let Some(position) = tracker.safe_position(*partition) {
                let _ = commits.add_partition_offset(
                    &self.topic,
                    *partition,
                    rdkafka::Offset::Offset(position),
                );
            }
        }
        if commits.count() > 0
            && let Err(err) = consumer.commit(&commits, CommitMode::Sync)
        {
            tracing::warn!(error = %err, "committing revoked partitions failed; they will be read again from the last commit");
        }
        tracker.forget(&partitions);
    }

    /// An asynchronous commit's outcome: a failed one is offered again at
    /// the next tick, and the log says which offsets and why.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(err) = result else {
            return;
        };
        let commits: Vec<(i32, i64)> = offsets
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(position) => Some((e.partition(), position)),
                _ => None,
            })
            .collect();
        if let Some(session) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            commit_failed(&session, &commits, &err);
        }
    }
}

/// Reads the raw topic, and the retry topic when partial events are
/// retried, until `shutdown`.
pub async fn run(enricher: Arc<Enricher>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let raw = tokio::spawn(feed(
        enricher.clone(),
        Feed::raw(&enricher),
        shutdown.clone(),
    ));
    let retry = enricher
        .config
        .enricher
        .retry_partial
        .then(|| tokio::spawn(feed(enricher.clone(), Feed::retry(&enricher), shutdown)));
    raw.await??;
    if let Some(retry) = retry {
        retry.await??;
    }
    Ok(())
}

async fn feed(
    enricher: Arc<Enricher>,
    feed: Feed,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        match session(enricher.clone(), &feed, &mut shutdown).await? {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::OutputFailed => {
                tracing::warn!(
                    "an output could not be stored; resuming from the last committed offsets"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

async fn session(
    enricher: Arc<Enricher>,
    feed: &Feed,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<SessionEnd> {
    let settings = &enricher.config.enricher;
    let topic = feed.topic.clone();
    let context = RebalanceContext {
        session: Mutex::new(None),
        topic: topic.clone(),
    };
    let mut member = tributary_kafka::member_config(
        &enricher.config.kafka,
        &feed.group_id,
        Some(&feed.instance_id),
    );
    if feed.delayed {
        // Messages wait in lanes for up to the longest retry delay; reading
        // pauses meanwhile when `max_in_flight` of them wait.
        let longest = settings.partial_retry_max_ms.saturating_add(300_000);
        member.set("max.poll.interval.ms", longest.min(86_400_000).to_string());
    }
    let consumer: StreamConsumer<RebalanceContext> = member.create_with_context(context)?;
    consumer.subscribe(&[&topic])?;
    tracing::info!(%topic, group = %feed.group_id, instance = %feed.instance_id, "consuming");
    let session = Arc::new(Session {
        tracker: Mutex::new(OffsetTracker::default()),
        failed: AtomicBool::new(false),
        outstanding: AtomicUsize::new(0),
        progress: Notify::new(),
        stopping: watch::channel(false).0,
    });
    *consumer
        .context()
        .session
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(session.clone());

    let lane_count = settings.lanes.max(1);
    let mut lanes = Vec::with_capacity(lane_count);
    let mut lane_tasks = Vec::with_capacity(lane_count);
    for _ in 0..lane_count {
        let (sender, receiver) = mpsc::channel::<Incoming>(64);
        lanes.push(sender);
        lane_tasks.push(tokio::spawn(lane(
            enricher.clone(),
            session.clone(),
            receiver,
            feed.delayed,
        )));
    }

    let mut ticker =
        tokio::time::interval(Duration::from_millis(settings.commit_interval_ms.max(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max_in_flight = settings.max_in_flight.max(1);
    let end = loop {
        let room = session.tracker().in_flight() < max_in_flight;
        tokio::select! {
            biased;
            _ = shutdown.changed() => break SessionEnd::Shutdown,
            _ = ticker.tick() => {
                commit(&consumer, &session, &topic, CommitMode::Async);
                if session.failed.load(Ordering::Relaxed) {
                    break SessionEnd::OutputFailed;
                }
            }
            _ = session.progress.notified(), if !room => {}
            message = consumer.recv(), if room => {
                let message = match message {
                    Ok(message) => message,
                    Err(err) => {
                        tracing::warn!(error = %err, %topic, "reading a topic");
                        continue;
                    }
                };
                let incoming = Incoming {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                };
                session.tracker().begin(incoming.partition, incoming.offset);
                let lane = lane_of(incoming.key.as_deref(), incoming.partition, lane_count);
                if lanes[lane].send(incoming).await.is_err() {
                    break SessionEnd::OutputFailed;
                }
            }
        }
    };

    // Drain: no more reading; lanes finish what they hold (a retry still
    // waiting stays uncommitted), outputs get acknowledged.
    session.stopping.send_replace(true);
    drop(lanes);
    for task in lane_tasks {
        let _ = task.await;
    }
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while session.outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    commit(&consumer, &session, &topic, CommitMode::Sync);
    *consumer
        .context()
        .session
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = None;
    consumer.unsubscribe();
    Ok(end)
}

/// Same key, same lane: one entity's events stay in order.
fn lane_of(key: Option<&[u8]>, partition: i32, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match key {
        Some(key) => key.hash(&mut hasher),
        None => partition.hash(&mut hasher),
    }
    (hasher.finish() % lanes as u64) as usize
}

fn commit(
    consumer: &StreamConsumer<RebalanceContext>,
    session: &Session,
    topic: &str,
    mode: CommitMode,
) {
    let commits = session.tracker().take_commits();
    if commits.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, position) in &commits {
        let _ = list.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*position));
    }
    match consumer.commit(&list, mode) {
        Ok(()) => internal_events::committed(commits.len()),
        Err(err) => commit_failed(session, &commits, &err),
    }
}

/// A commit of `commits` failed with `error`: logged, and offered again at
/// the next tick. Until a commit succeeds, a restart re-reads from the last
/// one (outputs are idempotent).
fn commit_failed(session: &Session, commits: &[(i32, i64)], error: &dyn std::fmt::Display) {
    session.tracker().commit_failed(commits);
    tracing::warn!(
        error = %error,
        offsets = ?commits,
        "offset commit failed; retrying at the next commit tick"
    );
}

async fn lane(
    enricher: Arc<Enricher>,
    session: Arc<Session>,
    mut receiver: mpsc::Receiver<Incoming>,
    delayed: bool,
) {
    let mut stopping = session.stopping.subscribe();
    while let Some(incoming) = receiver.recv().await {
        // After a failed output nothing more is produced in this session; what
        // is left stays uncommitted and is read again by the next one.
        if session.failed.load(Ordering::Relaxed) {
            continue;
        }
        // A retry not yet due is left uncommitted when the session stops.
        if delayed && let Some(wait) = retry_wait(&incoming) {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopping.wait_for(|stopping| *stopping) => continue,
            }
        }
        let outputs = enricher.process(&incoming).await;
        let wanted = outputs.len();
        let mut deliveries = Vec::with_capacity(wanted);
        for output in outputs {
            match queue(&enricher, &incoming, output).await {
                Some(delivery) => deliveries.push(delivery),
                None => break,
            }
        }
        if deliveries.len() < wanted {
            internal_events::produce_failed();
            session.failed.store(true, Ordering::Relaxed);
            continue;
        }
        session.outstanding.fetch_add(1, Ordering::Relaxed);
        let session = session.clone();
        let enricher = enricher.clone();
        let queued = Instant::now();
        tokio::spawn(async move {
            let (partition, offset) = (incoming.partition, incoming.offset);
            let mut stored = Ok(());
            for (output, delivery) in deliveries {
                if let Err(err) =
                    stored_or_dead_lettered(&enricher, &incoming, output, delivery).await
                {
                    stored = Err(err);
                    break;
                }
            }
            match stored {
                // Done once every output is stored; nothing to store is done too.
                Ok(()) => {
                    internal_events::output_acknowledged(queued.elapsed());
                    session.tracker().complete(partition, offset);
                }
                Err(err) => {
                    tracing::warn!(error = %err, partition, offset, "an output was not stored");
                    internal_events::produce_failed();
                    session.failed.store(true, Ordering::Relaxed);
                }
            }
            session.outstanding.fetch_sub(1, Ordering::Relaxed);
            session.progress.notify_one();
        });
    }
}

/// How long a retry-topic message must still wait; `None` when it is due
/// (or unreadable: processing dead-letters it).
fn retry_wait(incoming: &Incoming) -> Option<Duration> {
    let raw = tributary_envelope::RawEvent::decode_from(&incoming.payload).ok()?;
    let not_before = raw.enrichment_retry?.not_before_micros;
    let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
    (not_before > now).then(|| Duration::from_micros(not_before - now))
}

/// Waits for one output's acknowledgement. An output the broker refused for
/// what it is is replaced by its dead letter, which is stored or fails as
/// any output.
async fn stored_or_dead_lettered(
    enricher: &Enricher,
    incoming: &Incoming,
    output: Output,
    delivery: impl Future<Output = Stored>,
) -> Result<(), ProduceError> {
    match delivery.await {
        Err(err) if err.refuses_the_message() => {
            let letter = enricher.refused_output(incoming, &output, &err.to_string());
            match queue(enricher, incoming, letter).await {
                Some((_, delivery)) => delivery.await.map(|_| ()),
                None => Err(err),
            }
        }
        stored => stored.map(|_| ()),
    }
}

type Stored = Result<tributary_kafka::Delivered, ProduceError>;

/// Queues `output`, waiting for room in a full producer (keeping this
/// entity's order). An output the client refuses for what it is (larger
/// than `message.max.bytes`) is replaced by its dead letter. `None`: the
/// producer failed; the session must end.
async fn queue(
    enricher: &Enricher,
    incoming: &Incoming,
    output: Output,
) -> Option<(Output, impl Future<Output = Stored> + Send + 'static)> {
    let mut output = output;
    loop {
        match enricher
            .producer
            .enqueue(&output.topic, &output.key, &output.payload)
        {
            Ok(delivery) => return Some((output, delivery)),
            Err(ProduceError::QueueFull) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(err)
                if err.refuses_the_message()
                    && output.topic != enricher.config.topics.dead_letter =>
            {
                tracing::warn!(error = %err, partition = incoming.partition, offset = incoming.offset, "an output is refused for what it is; it goes to the dead-letter topic");
                output = enricher.refused_output(incoming, &output, &err.to_string());
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not queue an output");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_always_maps_to_one_lane() {
        let a = lane_of(Some(b"acme:pipedrive:deal:1"), 0, 64);
        assert_eq!(
            a,
            lane_of(Some(b"acme:pipedrive:deal:1"), 5, 64),
            "the key decides, not the partition"
        );
        let lanes: std::collections::BTreeSet<usize> = (0..200)
            .map(|i| lane_of(Some(format!("acme:pipedrive:deal:{i}").as_bytes()), 0, 64))
            .collect();
        assert!(lanes.len() > 40, "keys spread over lanes: {}", lanes.len());
    }
}
