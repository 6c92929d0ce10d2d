//! Enricher throughput, two ways in one run:
//!
//! 1. In memory, no broker: raw envelopes in, enriched JSON out, with warm
//!    caches (a first pass fills them), on all cores.
//! 2. Through a fresh private broker: the enricher process first works
//!    through one batch (filling its caches, counting API calls), then a
//!    second batch over the same entities is timed, next to a bare consumer
//!    that reads the same second batch and produces it unchanged (the
//!    broker's own consume-and-produce ceiling). Both are timed from their
//!    first output queued to their last output acknowledged.
//!
//! The API calls per 1,000 events are those of the first batch, from cold
//! caches, on a stream whose deals and people recur many times.
//!
//! `cargo run --release -p tributary-benches --bin enricher-load`

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_benches::stream::{Shape, account, webhooks};
use tributary_config::{KafkaSettings, Loader};
use tributary_enricher::{Enricher, EnricherConfig, Incoming};
use tributary_fake_apis::{EmailVerifier, EmailVerifierState, FakePipedrive, PipedriveState};
use tributary_tests::broker::{self, PrivateBroker};
use tributary_tests::enricher::{OMNI_TOKEN, VERIFIER_KEY, omni_tenant};
use tributary_tests::process::Service;

// The enricher binary's allocator, so the in-memory figure is the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 200)]
    people: i64,
    #[arg(long, default_value_t = 50)]
    organizations: i64,
    #[arg(long, default_value_t = 1_000)]
    deals: i64,
    /// Latency the fake APIs add to every answer, in milliseconds.
    #[arg(long, default_value_t = 5)]
    api_latency_ms: u64,
    /// Concurrent tasks for the in-memory run.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// `[enricher]` settings for the enricher process, e.g. `lanes=128`.
    #[arg(long = "service-enricher", value_parser = parse_key_value)]
    service_enricher: Vec<(String, String)>,
    /// `[kafka]` settings for the enricher process, e.g. `linger_ms=20`.
    #[arg(long = "service-kafka", value_parser = parse_key_value)]
    service_kafka: Vec<(String, String)>,
    /// Timed in-memory rounds (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Repeat the in-memory run this many times (for profiling) and stop there.
    #[arg(long)]
    in_memory_only: Option<usize>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {text:?}"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tributary_telemetry::metrics_handle();
    let shape = Shape {
        people: args.people,
        organizations: args.organizations,
        deals: args.deals,
        events: args.events,
    };
    let mut api = PipedriveState::default();
    api.accounts.insert(OMNI_TOKEN.into(), account(shape));
    api.behaviour.latency = Duration::from_millis(args.api_latency_ms);
    let pipedrive = FakePipedrive::start(api).await?;
    let mut verifier_state = EmailVerifierState::with_key(VERIFIER_KEY);
    verifier_state.behaviour.latency = Duration::from_millis(args.api_latency_ms);
    let verifier = EmailVerifier::start(verifier_state).await?;
    let enrichment = format!(
        "[enrichment.email_validation]\nurl = \"{}/v2/email-verifier\"\napi_key = \"{VERIFIER_KEY}\"\nrequests_per_second = 200\n\n{}",
        verifier.base_url(),
        omni_tenant(&pipedrive.base_url())
            .replace("requests_per_2s = 100", "requests_per_2s = 400")
    );

    let envelopes = raw_envelopes(shape, 0);
    eprintln!(
        "{} events over {} deals, {} people, {} organizations",
        envelopes.len(),
        shape.deals,
        shape.people,
        shape.organizations
    );

    // 1. In memory.
    let config: EnricherConfig = Loader::from_toml_str(&enrichment).extract()?;
    let enricher = Arc::new(Enricher::new(config)?);
    let incoming: Arc<Vec<Incoming>> = Arc::new(
        envelopes
            .iter()
            .enumerate()
            .map(|(offset, (key, value))| Incoming {
                topic: "raw".into(),
                partition: 0,
                offset: offset as i64,
                key: Some(key.clone().into_bytes()),
                payload: value.clone(),
            })
            .collect(),
    );
    let warm_started = Instant::now();
    let (_, warm_bytes) = process_all(&enricher, &incoming, 64).await;
    let warm = warm_started.elapsed();
    let cold_calls = pipedrive.state().calls.len() + verifier.state().calls.len();
    // Timed rounds; the median is reported (rounds vary with the machine's other work).
    let mut rates = Vec::new();
    let mut bytes = 0;
    for _ in 0..args.rounds {
        let started = Instant::now();
        let (partial, output) = process_all(&enricher, &incoming, args.tasks).await;
        rates.push(incoming.len() as f64 / started.elapsed().as_secs_f64());
        bytes = output;
        anyhow::ensure!(
            partial == 0,
            "{partial} events were partial with warm caches"
        );
    }
    rates.sort_by(f64::total_cmp);
    let in_memory_rate = rates[rates.len() / 2];
    let in_memory_best = rates[rates.len() - 1];
    let _ = warm_bytes;
    if let Some(rounds) = args.in_memory_only {
        let started = Instant::now();
        for round in 0..rounds {
            let round_started = Instant::now();
            process_all(&enricher, &incoming, args.tasks).await;
            let rate = incoming.len() as f64 / round_started.elapsed().as_secs_f64();
            eprintln!("round {round}: {rate:.0} events/s");
        }
        let rate = (rounds * incoming.len()) as f64 / started.elapsed().as_secs_f64();
        println!("enrichment in memory, warm caches: {rate:.0} events/s over {rounds} rounds");
        return Ok(());
    }

    // 2. Through the broker.
    let private = PrivateBroker::start();
    let brokers = private.brokers();
    let raw = broker::unique_topic(&brokers, "bench-raw", 6).await;
    let enriched = broker::unique_topic(&brokers, "bench-enriched", 6).await;
    let dead = broker::unique_topic(&brokers, "bench-dead", 1).await;
    let retry = broker::unique_topic(&brokers, "bench-retry", 6).await;
    let copied = broker::unique_topic(&brokers, "bench-bare", 6).await;
    let settings = KafkaSettings {
        brokers: brokers.clone(),
        compression: "none".into(),
        ..KafkaSettings::default()
    };

    // Both batches are on the raw topic before the enricher starts, so it is
    // timed on its own work, not on how fast the batches were written. The
    // bare copy reads its own copy of the second batch, which no one read before.
    let second = raw_envelopes(shape, 1);
    let bare_in = broker::unique_topic(&brokers, "bench-bare-in", 6).await;
    broker::produce(&brokers, &raw, &envelopes).await;
    broker::produce(&brokers, &raw, &second).await;
    broker::produce(&brokers, &bare_in, &second).await;
    let second_ids: HashSet<String> = second
        .iter()
        .map(|(_, value)| {
            tributary_envelope::RawEvent::decode_from(value)
                .expect("envelope")
                .event_id
        })
        .collect();

    pipedrive.state().calls.clear();
    verifier.state().calls.clear();
    let port = tributary_tests::free_port();
    let service_kafka: String = args
        .service_kafka
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let service_enricher: String = args
        .service_enricher
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let service_config = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ncompression = \"none\"\n{service_kafka}[topics]\nraw = \"{raw}\"\nenriched = \"{enriched}\"\ndead_letter = \"{dead}\"\nretry = \"{retry}\"\n[telemetry]\nlog_level = \"info\"\n[enricher]\nlisten = \"127.0.0.1:{port}\"\ngroup_id = \"bench\"\ninstance_id = \"bench-1\"\n{service_enricher}{enrichment}"
    );
    let started = Instant::now();
    let service = Service::start("tributary-enricher", "enricher", &service_config);
    let all_stored = wait_for_count(
        &settings,
        &enriched,
        envelopes.len() + second.len(),
        Duration::from_secs(900),
    )
    .await?;
    let wall = started.elapsed();
    let usage = tributary_benches::process_usage(service.pid()).unwrap_or_default();
    let [first_batch, second_batch] = windows(&settings, &enriched, &second_ids)?;
    let span = |first: i64, last: i64| {
        Duration::from_millis(u64::try_from((last - first).max(1)).unwrap_or(1))
    };
    // From the first output queued to the last one stored (acknowledged).
    let first_window = span(first_batch.0, first_batch.1.max(second_batch.0));
    let through = span(second_batch.0, all_stored.max(second_batch.1));
    let (pipedrive_calls, verifier_calls) =
        (pipedrive.state().calls.len(), verifier.state().calls.len());
    let per_thousand = 1000.0 * (pipedrive_calls + verifier_calls) as f64
        / (envelopes.len() + second.len()) as f64;
    let distinct = distinct_entities(shape);
    let bare = bare_consume_and_produce(&settings, &bare_in, &copied, second.len()).await?;
    let cold = first_window;

    let through_rate = second.len() as f64 / through.as_secs_f64();
    let cold_rate = envelopes.len() as f64 / cold.as_secs_f64();
    let bare_rate = second.len() as f64 / bare.as_secs_f64();
    println!();
    println!("| run | events | time | events/s |");
    println!("|---|---|---|---|");
    println!(
        "| enrichment in memory, warm caches, {} tasks (median of {} rounds; best {in_memory_best:.0}) | {} | {:.3} s | {in_memory_rate:.0} |",
        args.tasks,
        args.rounds,
        incoming.len(),
        incoming.len() as f64 / in_memory_rate
    );
    println!(
        "| (first pass, filling the caches) | {} | {:.3} s | {:.0} |",
        incoming.len(),
        warm.as_secs_f64(),
        incoming.len() as f64 / warm.as_secs_f64()
    );
    println!(
        "| bare consume-and-produce through the broker | {} | {:.3} s | {bare_rate:.0} |",
        second.len(),
        bare.as_secs_f64()
    );
    println!(
        "| enricher through the broker, warm caches | {} | {:.3} s | {through_rate:.0} |",
        second.len(),
        through.as_secs_f64()
    );
    println!(
        "| enricher through the broker, first batch from cold caches | {} | {:.3} s | {cold_rate:.0} |",
        envelopes.len(),
        cold.as_secs_f64()
    );
    println!();
    println!(
        "enricher through the broker: {:.0} % of the bare ceiling (first batch, cold: {:.0} %; wall time from process start to both batches done: {:.1} s)",
        100.0 * through_rate / bare_rate,
        100.0 * cold_rate / bare_rate,
        wall.as_secs_f64()
    );
    println!(
        "API calls over both batches: {pipedrive_calls} Pipedrive + {verifier_calls} verifier = {per_thousand:.1} per 1,000 events; {distinct} distinct entities the stream touches"
    );
    let _ = cold_calls;
    println!(
        "enricher process: {:.0} MiB peak RSS, {:.2} CPU-s",
        usage.peak_rss_mib, usage.cpu_seconds
    );
    println!(
        "average enriched event: {} bytes",
        bytes / incoming.len().max(1)
    );
    if std::env::var_os("BENCH_SHOW_LOG").is_some() {
        eprintln!("{}", service.log());
        let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        for line in metrics.lines().filter(|l| {
            !l.starts_with('#')
                && (l.contains("api_requests")
                    || l.contains("_seconds_sum")
                    || l.contains("_seconds_count")
                    || l.contains("_total"))
        }) {
            eprintln!("{line}");
        }
    }
    Ok(())
}

/// Enriches every message on `tasks` tasks; returns (partial events, output bytes).
async fn process_all(
    enricher: &Arc<Enricher>,
    incoming: &Arc<Vec<Incoming>>,
    tasks: usize,
) -> (usize, usize) {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (enricher, incoming) = (enricher.clone(), incoming.clone());
        handles.push(tokio::spawn(async move {
            let (mut partial, mut bytes) = (0, 0);
            for message in incoming.iter().skip(task).step_by(tasks) {
                // The bench's events are all of objects a dashboard needs;
                // the enriched event comes first (a retry may follow it).
                let Some(output) = enricher.process(message).await.into_iter().next() else {
                    continue;
                };
                bytes += output.payload.len();
                // The status and the missing list close every enriched event.
                if !output.payload.ends_with(
                    br#""pipeline_enrichment_status":"complete","pipeline_enrichment_missing":[]}"#,
                ) {
                    partial += 1;
                }
            }
            (partial, bytes)
        }));
    }
    let mut totals = (0, 0);
    for handle in handles {
        if let Ok((partial, bytes)) = handle.await {
            totals.0 += partial;
            totals.1 += bytes;
        }
    }
    totals
}

/// Reads `count` messages of `from` and writes each unchanged to `to`: the
/// broker's own ceiling for this workload. Timed from the first output queued
/// to the last one acknowledged, as the enricher is.
async fn bare_consume_and_produce(
    settings: &KafkaSettings,
    from: &str,
    to: &str,
    count: usize,
) -> anyhow::Result<Duration> {
    let consumer: StreamConsumer =
        tributary_kafka::consumer_config(settings, "bench-bare").create()?;
    consumer.subscribe(&[from])?;
    let producer: rdkafka::producer::FutureProducer =
        tributary_kafka::producer_config(settings).create()?;
    let mut deliveries = Vec::with_capacity(count);
    while deliveries.len() < count {
        let message = consumer.recv().await?;
        let mut record = FutureRecord::to(to).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        deliveries.push(tributary_benches::enqueue(&producer, record).await);
    }
    for delivery in deliveries {
        delivery
            .await
            .ok()
            .and_then(Result::ok)
            .context("a copied message was not stored")?;
    }
    let all_stored = chrono::Utc::now().timestamp_millis();
    let [(first, _), _] = windows(settings, to, &HashSet::new()).context("timing the copy")?;
    // From the first output queued to the last one stored (acknowledged).
    Ok(Duration::from_millis(
        u64::try_from((all_stored - first).max(1)).unwrap_or(1),
    ))
}

/// Each partition's end offset (where the next message will land).
fn end_offsets(settings: &KafkaSettings, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = tributary_kafka::client_config(settings).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut ends = BTreeMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(5))?;
        ends.insert(partition.id(), high);
    }
    Ok(ends)
}

/// Waits until `topic` holds `count` (stored) messages; returns when that
/// was seen, in epoch milliseconds (checked every 25 ms).
async fn wait_for_count(
    settings: &KafkaSettings,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let total: i64 = end_offsets(settings, topic)?.values().sum();
        if total >= count as i64 {
            return Ok(chrono::Utc::now().timestamp_millis());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {total} of {count} messages on {topic} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Creation-time spans (first, last; epoch milliseconds) of `topic`'s
/// messages: of those whose `pipeline_event_id` is not in `marked`, and of those that are.
fn windows(
    settings: &KafkaSettings,
    topic: &str,
    marked: &HashSet<String>,
) -> anyhow::Result<[(i64, i64); 2]> {
    let mut config = tributary_kafka::consumer_config(settings, "bench-timing");
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut assignment = TopicPartitionList::new();
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    for partition in &partitions {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut spans = [(i64::MAX, i64::MIN); 2];
    let mut at_end = 0;
    while at_end < partitions.len() {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                let Some(t) = message.timestamp().to_millis() else {
                    continue;
                };
                let is_marked = !marked.is_empty()
                    && serde_json::from_slice::<serde_json::Value>(
                        message.payload().unwrap_or_default(),
                    )
                    .ok()
                    .and_then(|v| {
                        v.get("pipeline_event_id")
                            .and_then(|id| id.as_str().map(|id| marked.contains(id)))
                    })
                    .unwrap_or(false);
                let span = &mut spans[usize::from(is_marked)];
                span.0 = span.0.min(t);
                span.1 = span.1.max(t);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(err)) => return Err(err.into()),
            None => break,
        }
    }
    Ok(spans)
}

/// The raw envelopes (key, value) of one batch of the stream.
fn raw_envelopes(shape: Shape, batch: usize) -> Vec<(String, Vec<u8>)> {
    webhooks(shape, batch)
        .iter()
        .map(|body| {
            let (key, event) = tributary_tests::raw::pipedrive_envelope(
                "omni",
                &serde_json::to_vec(body).expect("json"),
            );
            (key, event.encode_to_vec())
        })
        .collect()
}

/// Entities the stream can touch: people, organizations, person deal lists,
/// stages, the pipeline, the owner, three kinds of field definitions, and emails.
fn distinct_entities(shape: Shape) -> i64 {
    shape.people * 3 + shape.organizations + 6 + 1 + 1 + 3
}
