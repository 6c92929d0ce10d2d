//! Salesforce Change Data Capture: how fast a subscription moves change
//! events from the Pub/Sub API onto the raw topic, and how long a restarted
//! one takes to resume.
//!
//! A fake Pub/Sub API (gRPC, the fake of the tests) holds `--events` change
//! events on `/data/OpportunityChangeEvent` (creations and stage changes of
//! `--records` opportunities, Avro-encoded). The subscription the collector
//! runs reads them, 100 at a time with flow control, into a sink that
//! produces each raw event to the broker and awaits its acknowledgement (as
//! the collector does), checkpointing after each batch.
//!
//! 1. Drain: events/s from subscribe to the last event acknowledged.
//! 2. Resume: the subscription is stopped half-way through a second run of
//!    `--events`, restarted, and timed from its start to its first stored
//!    event; the run then checks that every event was stored exactly once.
//!
//! Needs a broker (`deploy/local/up.sh` starts one on 127.0.0.1:9092) and
//! the raw topic. Run with
//! `cargo run --release -p tributary-benches --bin cdc-subscription`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use apache_avro::types::Value as Avro;
use clap::Parser;
use tributary_envelope::RawEvent;
use tributary_fake_apis::salesforce_pubsub::{
    Change, FakePubSub, OPPORTUNITY_CHANGE_EVENT_SCHEMA, OPPORTUNITY_SCHEMA_ID, PubSubState,
    RunningPubSub, encode,
};
use tributary_kafka::EventProducer;
use tributary_sources::BoxFuture;
use tributary_sources::pull::{Checkpoints, PullSink, PullSource};

#[derive(Parser)]
#[command(about = "Measure Change Data Capture events/s onto the raw topic and resume time")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "tributary.raw")]
    topic: String,
    /// Change events per run.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Opportunities they are about.
    #[arg(long, default_value_t = 2_000)]
    records: usize,
}

const TOKEN: &str = "00D5g000004ABCD!bench";
const CHANNEL: &str = "/data/OpportunityChangeEvent";

/// Produces each event and awaits every acknowledgement; remembers ids.
struct RawTopic {
    producer: Arc<EventProducer>,
    topic: String,
    stored: Mutex<Vec<String>>,
    first_stored: Mutex<Option<Instant>>,
}

impl PullSink for RawTopic {
    fn store(&self, events: Vec<RawEvent>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
                acks.push(
                    self.producer
                        .enqueue(&self.topic, &event.partition_key(), &event.encode_to_vec())
                        .map_err(|e| e.to_string())?,
                );
            }
            for ack in acks {
                ack.await.map_err(|e| e.to_string())?;
            }
            self.first_stored
                .lock()
                .expect("lock")
                .get_or_insert_with(Instant::now);
            self.stored
                .lock()
                .expect("lock")
                .extend(events.into_iter().map(|e| e.event_id));
            Ok(())
        })
    }
}

impl RawTopic {
    fn count(&self) -> usize {
        self.stored.lock().expect("lock").len()
    }
}

fn publish(fake: &RunningPubSub, schema: &apache_avro::Schema, args: &Args, run: usize) {
    let stages = ["Prospecting", "Qualification", "Negotiation", "Closed Won"];
    for n in 0..args.events {
        let record = format!("0065g0000{:09}", n % args.records);
        let change = if n < args.records && run == 0 {
            Change {
                change_type: "CREATE",
                record_ids: vec![record],
                commit_timestamp_ms: 1_741_000_000_000 + (run * args.events + n) as i64,
                fields: vec![
                    ("Name", Some(Avro::String(format!("Deal {n}")))),
                    ("Amount", Some(Avro::Double(1_000.0 + n as f64))),
                    ("StageName", Some(Avro::String("Prospecting".into()))),
                    ("CloseDate", Some(Avro::Int(20_151))),
                    ("OwnerId", Some(Avro::String("0055g00000OwNeRAAA".into()))),
                ],
            }
        } else {
            Change {
                change_type: "UPDATE",
                record_ids: vec![record],
                commit_timestamp_ms: 1_741_000_000_000 + (run * args.events + n) as i64,
                fields: vec![
                    (
                        "StageName",
                        Some(Avro::String(stages[n % stages.len()].into())),
                    ),
                    ("LastModifiedDate", Some(Avro::Long(1_741_000_000_000))),
                ],
            }
        };
        fake.state()
            .publish(CHANNEL, OPPORTUNITY_SCHEMA_ID, encode(schema, &change));
    }
}

fn subscription(fake: &RunningPubSub) -> anyhow::Result<Box<dyn PullSource>> {
    let section = serde_json::json!({
        "organization_id": "00D5g000004ABCD", "endpoint_secret": "s",
        "instance_url": "https://acme.my.salesforce.com", "access_token": TOKEN,
        "pubsub_url": fake.url(), "change_events": [CHANNEL], "change_events_start": "earliest",
    });
    let platform = tributary_sources::platform("salesforce").context("registered")?;
    let build = platform.pull.context("Salesforce pulls")?;
    let mut built = build(vec![("bench", &section)], reqwest::Client::new())?;
    built.pop().context("one subscription")
}

async fn wait_for(sink: &RawTopic, count: usize, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while sink.count() < count {
        anyhow::ensure!(
            start.elapsed() < limit,
            "{} of {count} events stored after {limit:?}",
            sink.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let schema = apache_avro::Schema::parse_str(OPPORTUNITY_CHANGE_EVENT_SCHEMA)?;
    let mut state = PubSubState {
        keepalive: Duration::from_secs(1),
        ..PubSubState::default()
    };
    state.tokens.insert(TOKEN.into());
    let fake = FakePubSub::start(state).await?;
    publish(&fake, &schema, &args, 0);
    let kafka = tributary_config::KafkaSettings {
        brokers: args.brokers.clone(),
        ..tributary_config::KafkaSettings::default()
    };
    let sink = Arc::new(RawTopic {
        producer: Arc::new(EventProducer::new(&kafka)?),
        topic: args.topic.clone(),
        stored: Mutex::new(Vec::new()),
        first_stored: Mutex::new(None),
    });
    let dir = tempfile::tempdir()?;
    let checkpoints = Checkpoints::open(dir.path())?;

    // 1. Drain.
    let source = subscription(&fake)?;
    let started = Instant::now();
    let task = {
        let (sink, checkpoints) = (sink.clone(), checkpoints.clone());
        tokio::spawn(async move { source.run(sink.as_ref(), &checkpoints).await })
    };
    wait_for(&sink, args.events, Duration::from_secs(600)).await?;
    let drain = started.elapsed();
    println!(
        "drain: {} change events onto {} in {:.2} s = {:.0} events/s",
        args.events,
        args.topic,
        drain.as_secs_f64(),
        args.events as f64 / drain.as_secs_f64()
    );

    // 2. Resume: stop half-way through a second run, restart, time it.
    publish(&fake, &schema, &args, 1);
    wait_for(
        &sink,
        args.events + args.events / 2,
        Duration::from_secs(600),
    )
    .await?;
    task.abort();
    let _ = task.await;
    let stopped_at = sink.count();
    *sink.first_stored.lock().expect("lock") = None;
    // Wait for the stopped subscription's in-flight store to settle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_restart = sink.count();
    let restarted = Instant::now();
    let source = subscription(&fake)?;
    let task = {
        let (sink, checkpoints) = (sink.clone(), checkpoints.clone());
        tokio::spawn(async move { source.run(sink.as_ref(), &checkpoints).await })
    };
    wait_for(&sink, 2 * args.events, Duration::from_secs(600)).await?;
    let resumed = sink
        .first_stored
        .lock()
        .expect("lock")
        .map(|first| first.duration_since(restarted));
    let finished = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    task.abort();
    let stored = sink.stored.lock().expect("lock").clone();
    let distinct: HashSet<&String> = stored.iter().collect();
    println!(
        "resume: stopped after {stopped_at} events ({before_restart} once settled); first event stored {:.0} ms after the restart; the remaining {} in {:.2} s",
        resumed.unwrap_or_default().as_secs_f64() * 1_000.0,
        2 * args.events - before_restart,
        finished.as_secs_f64()
    );
    println!(
        "exactly once: {} stored, {} distinct, {} expected (re-read after the stop: {})",
        stored.len(),
        distinct.len(),
        2 * args.events,
        stored.len() - distinct.len()
    );
    anyhow::ensure!(
        distinct.len() == 2 * args.events,
        "events were skipped: {} distinct of {}",
        distinct.len(),
        2 * args.events
    );
    Ok(())
}
