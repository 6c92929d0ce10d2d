//! The activator under load, in one run:
//!
//! 1. the load path alone: enriched events in memory, validated, converted,
//!    de-duplicated and inserted into ClickHouse (materialized views
//!    included) in 50,000-event batches, next to the `clickhouse` crate's
//!    bare insert of the same `events` rows into a table without views;
//! 2. through the broker: the activator process consuming a topic holding
//!    every event, next to a bare consumer reading the same topic (both timed
//!    from the first message read to the last one done);
//! 3. end-to-end latency at a steady rate: events written to the topic at
//!    `--rate` per second, each timed from its write to the moment a query
//!    of the `events` table (what every panel reads, views included) first
//!    returns it.
//!
//! Needs the local services (`deploy/local/up.sh`): the shared broker and
//! ClickHouse. Each run uses fresh topics and databases.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tributary_benches::{histogram, record, summary};
use tributary_tests::activator::{ActivatorProcess, DealChange, deal_history, load_in_process};
use tributary_tests::broker;
use tributary_tests::clickhouse::TestDatabase;
use tributary_tests::enricher::Topics;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Deals in the generated history (about 3.3 events each).
    #[arg(long, default_value_t = 60_000)]
    deals: i64,
    /// Events per batch in the in-memory load path.
    #[arg(long, default_value_t = 50_000)]
    batch: usize,
    /// Steady rate of the latency run, events per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

const TENANTS: [&str; 4] = ["north", "south", "east", "west"];

fn history(deals: i64, start_micro: i64) -> Vec<Value> {
    let per_tenant = deals / TENANTS.len() as i64;
    let mut events: Vec<Value> = TENANTS
        .iter()
        .flat_map(|t| deal_history(t, per_tenant, start_micro))
        .map(|c: DealChange| c.to_json())
        .collect();
    // Interleave tenants and deals as a live stream would.
    events.sort_by_key(|e| e["event_timestamp_micro"].as_i64().unwrap_or_default());
    events
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tributary_telemetry::metrics_handle();
    let start_micro = chrono::Utc::now().timestamp_micros() - 86_400_000_000;
    let events = history(args.deals, start_micro);
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).expect("json"))
        .collect();
    let n = payloads.len();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "{n} enriched events ({} deals, {} tenants, {:.0} bytes each on average)",
        args.deals,
        TENANTS.len(),
        bytes as f64 / n as f64
    );

    // 1. The load path alone, and the bare insert of the same rows.
    let db = TestDatabase::create("bench_load").await;
    let started = Instant::now();
    let loads = load_in_process(&db.settings, "", &payloads, args.batch).await;
    let load_path = started.elapsed();
    // The same rows into plain tables of the same columns, without views.
    let mut bare_tables = std::collections::BTreeSet::new();
    for inserted in loads.iter().flatten() {
        let (database, table) = inserted
            .target
            .default_name()
            .split_once('.')
            .map(|(d, t)| (d.to_owned(), t.to_owned()))
            .context("database.table")?;
        if bare_tables.insert(table.clone()) {
            let database = db.rename(&database);
            db.execute(&format!(
                "CREATE TABLE {database}.bare_{table} AS {database}.{table} ENGINE = MergeTree ORDER BY tuple()"
            ))
            .await;
        }
    }
    let client = tributary_clickhouse::client(&db.settings);
    let started = Instant::now();
    for inserted in loads.into_iter().flatten() {
        let name = db.rename(&inserted.target.default_name());
        let (database, table) = name.split_once('.').context("database.table")?;
        let mut insert = client.insert_formatted_with(format!(
            "INSERT INTO {database}.bare_{table} FORMAT JSONEachRow"
        ));
        insert.send(inserted.rows).await?;
        insert.end().await?;
    }
    let bare_insert = started.elapsed();
    let load_rate = n as f64 / load_path.as_secs_f64();
    let bare_rate = n as f64 / bare_insert.as_secs_f64();
    drop(db);

    // 2. Through the broker.
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 6).await;
    let messages: Vec<(String, Vec<u8>)> = events
        .iter()
        .zip(&payloads)
        .map(|(e, p)| {
            (
                format!("{}:deal:{}", e["pipeline_tenant"], e["deal_id"]),
                p.clone(),
            )
        })
        .collect();
    broker::produce(&brokers, &topics.enriched, &messages).await;
    let bare_consume = bare_consume(&brokers, &topics.enriched, n).await?;
    let db = TestDatabase::create("bench_broker").await;
    let process = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("bench"),
        "",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(900);
    let loaded = loop {
        let rows = db
            .query("SELECT count() AS n FROM tributary.load_ledger")
            .await;
        if rows[0]["n"].as_u64() == Some(n as u64) {
            break chrono::Utc::now().timestamp_micros();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "activator did not load everything"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // From the first batch's load (its first message was read just before) to the last insert seen.
    let first = db
        .query("SELECT min(loaded_at_micro) AS t FROM tributary.event_log")
        .await[0]["t"]
        .as_i64()
        .context("first load")?;
    let first_batch_age = Duration::from_millis(1_000);
    let through =
        Duration::from_micros(u64::try_from(loaded - first).unwrap_or(0)) + first_batch_age;
    let usage = tributary_benches::process_usage(process.service.pid()).unwrap_or_default();
    drop(process);
    drop(db);

    // 3. Latency at a steady rate.
    let latency = steady_latency(&brokers, &args, start_micro).await?;
    let (p50, p99, max) = summary(&latency);

    println!();
    println!("| run | events | time | events/s |");
    println!("|---|---|---|---|");
    println!(
        "| load path (validate, convert, de-duplicate, insert with views) | {n} | {:.2} s | {load_rate:.0} |",
        load_path.as_secs_f64()
    );
    println!(
        "| bare `clickhouse` insert of the same event rows | {n} | {:.2} s | {bare_rate:.0} |",
        bare_insert.as_secs_f64()
    );
    println!(
        "| bare consume through the broker | {n} | {:.2} s | {:.0} |",
        bare_consume.as_secs_f64(),
        n as f64 / bare_consume.as_secs_f64()
    );
    println!(
        "| activator through the broker | {n} | {:.2} s | {:.0} |",
        through.as_secs_f64(),
        n as f64 / through.as_secs_f64()
    );
    println!();
    println!(
        "load path: {:.0} % of the bare insert; through the broker: {:.0} % of the bare consume",
        100.0 * load_rate / bare_rate,
        100.0 * bare_consume.as_secs_f64() / through.as_secs_f64()
    );
    println!(
        "activator process: {:.0} MiB peak RSS, {:.1} CPU-s",
        usage.peak_rss_mib, usage.cpu_seconds
    );
    println!(
        "written to visible in a query at {}/s for {} s ({} events): p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
        args.rate,
        args.seconds,
        latency.len()
    );
    Ok(())
}

/// Reads `count` messages of `topic`; timed from the first to the last.
async fn bare_consume(brokers: &str, topic: &str, count: usize) -> anyhow::Result<Duration> {
    let consumer: StreamConsumer = tributary_kafka::consumer_config(
        &broker::settings(brokers),
        &tributary_tests::unique("bare"),
    )
    .create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut bytes = 0usize;
    for _ in 0..count {
        let message = consumer.recv().await?;
        first.get_or_insert_with(Instant::now);
        bytes += message.payload().map_or(0, <[u8]>::len);
    }
    anyhow::ensure!(bytes > 0, "read nothing");
    Ok(first.map(|f| f.elapsed()).unwrap_or_default())
}

/// Writes events at `args.rate` for `args.seconds`, each carrying its write
/// time as `pipeline_received_at_micro`, and polls the `events` table for
/// them; returns each event's write-to-visible latency.
async fn steady_latency(
    brokers: &str,
    args: &Args,
    start_micro: i64,
) -> anyhow::Result<Histogram<u64>> {
    let topics = Topics::create(brokers, 6).await;
    let db = TestDatabase::create("bench_latency").await;
    let _process = ActivatorProcess::start(
        brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("latency"),
        "",
    )
    .await;
    let total = (args.rate * args.seconds) as usize;
    let deals = (total as i64 / 3).max(1);
    let mut events = history(deals * TENANTS.len() as i64, start_micro + 10_000_000_000);
    events.truncate(total);
    let producer: FutureProducer = tributary_kafka::producer_config(&broker::settings(brokers))
        .set("compression.type", "none")
        .create()?;
    // Warm-up: the group joins and the first batch loads before timing starts.
    let mut warm = history(4, start_micro - 10_000_000_000).remove(0);
    warm["pipeline_received_at_micro"] = Value::from(0);
    broker::produce(
        brokers,
        &topics.enriched,
        &[("warm".into(), serde_json::to_vec(&warm)?)],
    )
    .await;
    while db
        .query("SELECT count() AS n FROM tributary.load_ledger")
        .await[0]["n"]
        .as_u64()
        != Some(1)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writer = {
        let producer = producer.clone();
        let topic = topics.enriched.clone();
        let rate = args.rate;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut deliveries = Vec::with_capacity(events.len());
            for (i, mut event) in events.into_iter().enumerate() {
                let due = started + Duration::from_micros(i as u64 * 1_000_000 / rate);
                tokio::time::sleep_until(due.into()).await;
                event["pipeline_received_at_micro"] =
                    Value::from(chrono::Utc::now().timestamp_micros());
                let key = format!("{}:deal:{}", event["pipeline_tenant"], event["deal_id"]);
                let payload = serde_json::to_vec(&event).expect("json");
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((e, _)) => panic!("producing: {e}"),
                }
            }
            for delivery in deliveries {
                let _ = delivery.await;
            }
        })
    };
    let mut latency = histogram();
    // Batches mix partitions, so an event may become visible after a later
    // one: look back a few seconds behind the newest seen, count each once.
    let mut seen_up_to = 0i64;
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 120);
    while seen.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} events became visible",
            seen.len()
        );
        let rows = db
            .query(&format!(
                "SELECT event_id AS id, received_at_micro AS t FROM tributary.event_log \
                 WHERE received_at_micro > {} AND received_at_micro > 0",
                seen_up_to - 10_000_000
            ))
            .await;
        let now = chrono::Utc::now().timestamp_micros();
        for row in &rows {
            let t = row["t"].as_i64().unwrap_or_default();
            if seen.insert(row["id"].as_str().unwrap_or_default().to_owned()) {
                record(
                    &mut latency,
                    Duration::from_micros(u64::try_from(now - t).unwrap_or(0)),
                );
                seen_up_to = seen_up_to.max(t);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.await?;
    Ok(latency)
}
