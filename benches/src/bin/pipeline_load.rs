//! The whole pipeline under load, in one run: a simulated world's webhooks
//! posted to the collector at fixed offered rates (default 500/s, then
//! 2,000/s, then as fast as it takes them), through the enricher (against the
//! fake APIs) and the activator into ClickHouse. Per phase: webhooks
//! accepted per second, events loaded per second, freshness (collector
//! receipt to the row a dashboard reads: p50/p99/max) and each service's CPU
//! and memory. In the same run, the broker's bare ceiling: a pipelined
//! producer and a consumer moving messages of the same size.
//!
//! The fake APIs answer at once without rate limits or failures here, so the
//! figures are the pipeline's own, not a Pipedrive plan's.
//!
//! Needs the local services (`deploy/local/up.sh`); uses fresh topics, groups
//! and a fresh database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tributary_benches::process_usage;
use tributary_demo::{Pipeline, Stage, check_panels, whole_world};
use tributary_tests::broker;
use tributary_tests::clickhouse::TestDatabase;
use tributary_tests::enricher::Topics;
use tributary_world::{Delivery, Habits, TenantSpec, World, WorldConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Deals in the simulated world (about 6.5 deliveries each).
    #[arg(long, default_value_t = 14_000)]
    deals: usize,
    /// Offered rates of the fixed-rate phases, webhooks per second.
    #[arg(long, value_delimiter = ',', default_values_t = [500.0, 2_000.0])]
    rates: Vec<f64>,
    /// Length of each fixed-rate phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Requests in flight in the as-fast-as-it-takes phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// The local broker's and ClickHouse's pids, as `deploy/local/up.sh` recorded them.
fn local_service_pids() -> Vec<(&'static str, u32)> {
    let state = std::env::var("TRIBUTARY_LOCAL_STATE")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.local").into());
    ["kafka", "clickhouse"]
        .into_iter()
        .filter_map(|name| {
            let pid = std::fs::read_to_string(format!("{state}/pids/{name}.pid")).ok()?;
            Some((name, pid.trim().parse().ok()?))
        })
        .collect()
}

struct Phase {
    name: String,
    sent: usize,
    accepted_per_second: f64,
    loaded_per_second: f64,
    freshness: tributary_demo::Freshness,
    /// Per service: cores used and peak RSS in MiB.
    usage: Vec<(Stage, f64, f64)>,
    /// Cores used by the broker and ClickHouse, and by this process (the
    /// webhook sender and the fake APIs).
    others: Vec<(&'static str, f64)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = WorldConfig {
        seed: 11,
        start: tributary_world::DEFAULT_START,
        days: 120,
        tenants: vec![
            TenantSpec::new("northwind", 2, 12, args.deals * 7 / 10, args.deals),
            TenantSpec::new("globex", 1, 6, args.deals * 3 / 10, args.deals / 2),
        ],
    };
    let world = Arc::new(World::generate(config));
    let deliveries = world.deliveries(&Habits::default());
    let bytes: usize = deliveries.iter().map(|d| d.body.len()).sum();
    println!(
        "world: {} changes, {} deliveries ({:.0} bytes each on average)",
        world.changes.len(),
        deliveries.len(),
        bytes as f64 / deliveries.len() as f64
    );

    let brokers = broker::shared_brokers();
    let (produce, consume) = bare_ceiling(&brokers, 30_000, 2_000).await?;

    let topics = Topics::create(&brokers, 6).await;
    let db = TestDatabase::create("bench_pipeline").await;
    let dir = tempfile::tempdir()?;
    let mut options = tributary_tests::pipeline::options(&topics, &db, dir.path());
    options.log_level = "warn".into();
    // The pipeline's own capacity: fake APIs that answer at once, without a
    // rate limit or failures (the demo and the tests exercise those; a real
    // Pipedrive plan allows at most 480 requests per 2 s per tenant).
    options.api_flaky_every = None;
    options.api_requests_per_2s = 50_000;
    let pipeline = Arc::new(Pipeline::start(&world, options).await?);

    // Phases take consecutive slices of the stream, so every event is sent once.
    let mut phases = Vec::new();
    let mut offset: usize = 0;
    let mut plan: Vec<(String, Option<f64>, usize)> = args
        .rates
        .iter()
        .map(|r| {
            (
                format!("{r:.0}/s offered"),
                Some(*r),
                (*r * args.seconds as f64) as usize,
            )
        })
        .collect();
    plan.push(("as fast as taken".into(), None, usize::MAX));
    for (name, rate, count) in plan {
        let end = offset.saturating_add(count).min(deliveries.len());
        if end <= offset {
            break;
        }
        let slice: Arc<Vec<Delivery>> = Arc::new(deliveries[offset..end].to_vec());
        let changes: std::collections::BTreeSet<usize> =
            deliveries[..end].iter().map(|d| d.change).collect();
        offset = end;
        let before: Vec<_> = Stage::ALL
            .iter()
            .map(|s| {
                pipeline
                    .service(*s)
                    .pid()
                    .and_then(process_usage)
                    .unwrap_or_default()
            })
            .collect();
        let mut other_pids = local_service_pids();
        other_pids.push(("load generator and fake APIs", std::process::id()));
        let others_before: Vec<f64> = other_pids
            .iter()
            .map(|(_, pid)| process_usage(*pid).unwrap_or_default().cpu_seconds)
            .collect();
        let loaded_before = pipeline.loaded_events().await?;
        let since = chrono::Utc::now().timestamp_micros();
        let started = Instant::now();
        let concurrency = if rate.is_some() {
            256
        } else {
            args.concurrency
        };
        let report = pipeline
            .send(&world, slice, rate, concurrency, |_| {})
            .await?;
        anyhow::ensure!(
            report.refused.is_empty(),
            "refused: {:?}",
            report.refused.first()
        );
        pipeline
            .wait_until_loaded(changes.len() as u64, Duration::from_secs(300), |_| {})
            .await?;
        let elapsed = started.elapsed();
        let loaded = pipeline.loaded_events().await? - loaded_before;
        let freshness = pipeline
            .freshness_between(since, chrono::Utc::now().timestamp_micros())
            .await?;
        let usage = Stage::ALL
            .iter()
            .zip(&before)
            .map(|(stage, before)| {
                let now = pipeline
                    .service(*stage)
                    .pid()
                    .and_then(process_usage)
                    .unwrap_or_default();
                (
                    *stage,
                    (now.cpu_seconds - before.cpu_seconds) / elapsed.as_secs_f64(),
                    now.peak_rss_mib,
                )
            })
            .collect();
        let others = other_pids
            .iter()
            .zip(others_before)
            .map(|((name, pid), before)| {
                let now = process_usage(*pid).unwrap_or_default().cpu_seconds;
                (*name, (now - before) / elapsed.as_secs_f64())
            })
            .collect();
        phases.push(Phase {
            others,
            name,
            sent: report.deliveries,
            accepted_per_second: report.deliveries as f64 / report.elapsed.as_secs_f64(),
            loaded_per_second: loaded as f64 / elapsed.as_secs_f64(),
            freshness,
            usage,
        });
    }

    if std::env::var_os("PIPELINE_LOAD_METRICS").is_some() {
        for stage in Stage::ALL {
            let url = format!("{}/metrics", pipeline.service(stage).base_url());
            let text = reqwest::get(&url).await?.text().await?;
            for line in text.lines().filter(|l| {
                !l.starts_with('#')
                    && (l.contains("_sum") || l.contains("_count") || l.contains("_total"))
            }) {
                println!("{line}");
            }
        }
    }
    let mut mismatches = 0;
    for tenant in &world.tenants {
        let scope = whole_world(&world, &tenant.name);
        let panels = pipeline.panels(&scope).await?;
        mismatches += check_panels(&world, &scope, &panels)
            .iter()
            .map(|c| c.problems.len())
            .sum::<usize>();
    }

    println!();
    println!(
        "broker's bare ceiling ({} B messages): produce {produce:.0} msg/s, consume {consume:.0} msg/s",
        2_000
    );
    println!();
    println!(
        "| phase | webhooks | accepted/s | loaded events/s | freshness p50 ms | p99 ms | max ms | collector CPU / RSS | enricher CPU / RSS | activator CPU / RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for phase in &phases {
        let usage: Vec<String> = phase
            .usage
            .iter()
            .map(|(_, cores, rss)| format!("{cores:.2} cores / {rss:.0} MiB"))
            .collect();
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            phase.name,
            phase.sent,
            phase.accepted_per_second,
            phase.loaded_per_second,
            phase.freshness.p50_ms,
            phase.freshness.p99_ms,
            phase.freshness.max_ms,
            usage.join(" | ")
        );
    }
    println!();
    for phase in &phases {
        let others: Vec<String> = phase
            .others
            .iter()
            .map(|(name, cores)| format!("{name} {cores:.2} cores"))
            .collect();
        println!("{}: {}", phase.name, others.join(", "));
    }
    println!();
    println!(
        "dashboards against the ground truth after every phase: {}",
        if mismatches == 0 {
            "every panel exact".to_owned()
        } else {
            format!("{mismatches} differences")
        }
    );
    Ok(())
}

/// A pipelined producer writing `count` messages of `size` bytes to a fresh
/// topic, then a consumer reading them: messages per second for each.
async fn bare_ceiling(brokers: &str, count: usize, size: usize) -> anyhow::Result<(f64, f64)> {
    let topic = broker::unique_topic(brokers, "bare", 6).await;
    let settings = broker::settings(brokers);
    let producer: FutureProducer = tributary_kafka::producer_config(&settings)
        .set("compression.type", "none")
        .create()?;
    let payload = vec![b'x'; size];
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let key = format!("k{}", i % 997);
        let record = FutureRecord::to(&topic).key(&key).payload(&payload);
        deliveries.push(tributary_benches::enqueue(&producer, record).await);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let produce = count as f64 / started.elapsed().as_secs_f64();
    let consumer: StreamConsumer =
        tributary_kafka::consumer_config(&settings, &tributary_tests::unique("bare")).create()?;
    consumer.subscribe(&[&topic])?;
    let mut first = None;
    for _ in 0..count {
        let message = consumer.recv().await?;
        first.get_or_insert_with(Instant::now);
        std::hint::black_box(message.payload());
    }
    let consume = count as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64());
    Ok((produce, consume))
}
