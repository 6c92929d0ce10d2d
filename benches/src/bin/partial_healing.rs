//! How partial events heal after a burst a small API budget cannot keep up
//! with: a Pipedrive account's bulk import (every change of a few hundred
//! deals) posted to the collector as fast as it takes them, against a
//! Pipedrive API held to 20 requests per rolling 2 s (the fake refuses more
//! with 429) and a tenant budget of the same size, everything else at its
//! defaults. Reports how many events loaded `partial`, how long after the
//! last webhook every dashboard panel equals the ground truth and no event
//! is partial any more, and how many API calls that took.
//!
//! Needs the local services (`deploy/local/up.sh`); uses fresh topics, groups
//! and a fresh database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tributary_demo::{Pipeline, check_panels, whole_world};
use tributary_tests::clickhouse::TestDatabase;
use tributary_tests::enricher::Topics;
use tributary_world::{Habits, TenantSpec, World, WorldConfig};

#[derive(Parser)]
struct Args {
    /// Deals in the simulated account.
    #[arg(long, default_value_t = 300)]
    deals: usize,
    /// Activities in the simulated account.
    #[arg(long, default_value_t = 100)]
    activities: usize,
    /// The API budget, requests per rolling 2 s (Pipedrive's smallest plan: 20).
    #[arg(long, default_value_t = 20)]
    requests_per_2s: u32,
    /// Give up waiting for the dashboards after this many seconds.
    #[arg(long, default_value_t = 3_600)]
    timeout: u64,
}

/// Differences between the panels and the truth, summed over the tenants.
async fn problems(pipeline: &Pipeline, world: &World) -> anyhow::Result<usize> {
    let mut problems = 0;
    for tenant in &world.tenants {
        let scope = whole_world(world, &tenant.name);
        let panels = pipeline.panels(&scope).await?;
        problems += check_panels(world, &scope, &panels)
            .iter()
            .map(|c| c.problems.len())
            .sum::<usize>();
    }
    Ok(problems)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let world = Arc::new(World::generate(WorldConfig {
        seed: 23,
        start: tributary_world::DEFAULT_START,
        days: 60,
        tenants: vec![TenantSpec::new("acme", 1, 4, args.deals, args.activities)],
    }));
    let deliveries = Arc::new(world.deliveries(&Habits::default()));
    println!(
        "world: {} deals, {} changes, {} deliveries",
        args.deals,
        world.changes.len(),
        deliveries.len()
    );

    let brokers = tributary_tests::broker::shared_brokers();
    let topics = Topics::create(&brokers, 6).await;
    let db = TestDatabase::create("bench_healing").await;
    let dir = tempfile::tempdir()?;
    let mut options = tributary_tests::pipeline::options(&topics, &db, dir.path());
    options.log_level = "warn".into();
    options.api_requests_per_2s = args.requests_per_2s;
    let pipeline = Arc::new(Pipeline::start(&world, options).await?);
    pipeline.pipedrive.state().behaviour.burst_per_2s = Some(args.requests_per_2s);

    let started = Instant::now();
    let report = pipeline
        .send(&world, deliveries.clone(), None, 64, |_| {})
        .await?;
    anyhow::ensure!(
        report.refused.is_empty(),
        "refused: {:?}",
        report.refused.first()
    );
    let sent = started.elapsed();
    let calls_at_sent = pipeline.pipedrive.state().calls.len();
    println!(
        "posted {} webhooks in {:.1} s",
        report.deliveries,
        sent.as_secs_f64()
    );

    let expected = world.distinct_events() as u64;
    pipeline
        .wait_until_loaded(expected, Duration::from_secs(600), |_| {})
        .await?;
    let loaded = started.elapsed();
    let first = pipeline.enrichment_statuses().await?;
    let first_partial = first.get("partial").copied().unwrap_or_default();
    let first_problems = problems(&pipeline, &world).await?;
    println!(
        "every event loaded {:.1} s after the first webhook: {first_partial} of {expected} partial, {first_problems} differences from the truth",
        loaded.as_secs_f64()
    );

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last_report = Instant::now();
    let (healed_at, last_problems, last_partial) = loop {
        let partial = pipeline
            .enrichment_statuses()
            .await?
            .get("partial")
            .copied()
            .unwrap_or_default();
        let problems = problems(&pipeline, &world).await?;
        if (partial == 0 && problems == 0) || Instant::now() >= deadline {
            break (started.elapsed(), problems, partial);
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            println!(
                "  {:>5.0} s: {partial} partial, {problems} differences",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let calls = pipeline.pipedrive.state().calls.clone();
    let refused = calls.iter().filter(|c| c.status == 429).count();
    let retries_scheduled = pipeline
        .metric(
            tributary_demo::Stage::Enricher,
            "tributary_enricher_partial_retries_total",
        )
        .await?;
    let healed = pipeline
        .metric(
            tributary_demo::Stage::Enricher,
            "tributary_enricher_events_healed_total",
        )
        .await?;
    pipeline.stop();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| deliveries posted | {} |", report.deliveries);
    println!("| events | {expected} |");
    println!(
        "| partial when every event was first loaded | {first_partial} ({:.0} %) |",
        first_partial as f64 * 100.0 / expected.max(1) as f64
    );
    println!(
        "| panels equal the truth, no event partial | {} ({:.0} s after the last webhook) |",
        if last_partial == 0 && last_problems == 0 {
            "yes"
        } else {
            "no (timed out)"
        },
        (healed_at - sent).as_secs_f64()
    );
    println!("| re-enrichments scheduled | {retries_scheduled} |");
    println!("| events healed | {healed} |");
    println!(
        "| API calls | {} ({} during the posting, {refused} answered 429) |",
        calls.len(),
        calls_at_sent
    );
    println!(
        "| API calls per event | {:.2} |",
        calls.len() as f64 / expected.max(1) as f64
    );
    anyhow::ensure!(
        last_partial == 0 && last_problems == 0,
        "{last_partial} events still partial, {last_problems} differences after {} s",
        args.timeout
    );
    Ok(())
}
