//! `tributary-demo`: the main job on local services. Simulates two Pipedrive
//! accounts, a HubSpot one and a Zoho CRM one over 120 days, starts the fake
//! APIs and the three services,
//! streams every webhook through the collector over HTTP, waits until the
//! pipeline has caught up, and prints the dashboard numbers next to the
//! ground truth, the freshness and the throughput; writes the HTML report.
//! `deploy/local/demo.sh` builds it and starts the local services first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tributary_clickhouse::ClickHouseSettings;
use tributary_config::{KafkaSettings, TopicSettings};
use tributary_demo::{Options, Pipeline, check_panels, whole_world};
use tributary_report::{Fact, Header, Report};
use tributary_world::{DAY, Habits, World, WorldConfig};

#[derive(Parser)]
#[command(
    name = "tributary-demo",
    about = "Run the whole pipeline on a simulated CRM world"
)]
struct Args {
    /// Seed of the simulated world (the same seed gives the same world).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Days simulated, ending today.
    #[arg(long, default_value_t = 120)]
    days: i64,
    /// Webhooks posted per second.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Share of webhooks sent as v2 (the rest v1).
    #[arg(long, default_value_t = 0.5)]
    v2_share: f64,
    /// Leave the services and fake APIs running afterwards.
    #[arg(long)]
    keep: bool,
    /// The collector's port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    /// ClickHouse database of the demo (dropped and made afresh each run).
    #[arg(long, default_value = "demo")]
    database: String,
    /// ClickHouse 18.16 (the local server) needs the crate's row checks off.
    #[arg(long, default_value_t = false)]
    clickhouse_validation: bool,
    /// Configuration, logs and reports.
    #[arg(long, default_value = ".local/demo")]
    out: PathBuf,
    /// The CRMs whose simulated accounts take part, comma-separated (the
    /// world's: pipedrive, hubspot, zoho, dynamics, salesforce).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pipedrive,hubspot,zoho,dynamics,salesforce"
    )]
    sources: Vec<String>,
}

/// Keeps the world's accounts of `sources`, or says which cannot be simulated.
fn keep_sources(config: &mut WorldConfig, sources: &[String]) -> anyhow::Result<()> {
    let simulated = ["pipedrive", "hubspot", "zoho", "dynamics", "salesforce"];
    for source in sources {
        if tributary_sources::platform(source).is_none() {
            anyhow::bail!(
                "--sources: {source:?} is not a source; known sources: {}",
                tributary_sources::known_names()
            );
        }
        if !simulated.contains(&source.as_str()) {
            anyhow::bail!(
                "--sources: {source} has no accounts in the simulated world (it has {}); its deliveries are exercised by its end-to-end test, tests/tests/{source}.rs",
                simulated.join(", ")
            );
        }
    }
    config
        .tenants
        .retain(|tenant| sources.iter().any(|s| s == tenant.platform.name()));
    anyhow::ensure!(!config.tenants.is_empty(), "--sources names no CRM");
    Ok(())
}

fn bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>10} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// `1,234.50`; whole numbers without decimals.
fn thousands(value: f64) -> String {
    let decimals = if value.fract() == 0.0 { 0 } else { 2 };
    tributary_report::decimal(value, decimals)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let today = chrono::Utc::now().timestamp().div_euclid(DAY) * DAY;
    let start = today - args.days * DAY;
    let mut config = WorldConfig::demo(args.seed, start);
    config.days = args.days;
    keep_sources(&mut config, &args.sources)?;
    let world = Arc::new(World::generate(config));
    let habits = Habits {
        v2_share: args.v2_share,
        ..Habits::default()
    };
    let deliveries = Arc::new(world.deliveries(&habits));
    let platforms: Vec<String> = world
        .tenants
        .iter()
        .map(|t| format!("{} ({})", t.name, t.source()))
        .collect();
    println!(
        "Simulated {} accounts, {}, over {} days: {} changes ({} deals, {} activities, {} people, {} organizations), {} webhook deliveries with retries, duplicates and late arrivals",
        world.tenants.len(),
        platforms.join(", "),
        args.days,
        world.changes.len(),
        world.tenants.iter().map(|t| t.deals.len()).sum::<usize>(),
        world
            .tenants
            .iter()
            .map(|t| t.activities.len())
            .sum::<usize>(),
        world.tenants.iter().map(|t| t.persons.len()).sum::<usize>(),
        world
            .tenants
            .iter()
            .map(|t| t.organizations.len())
            .sum::<usize>(),
        deliveries.len()
    );

    // A run of its own: fresh topics and a fresh database.
    let run = format!("tributary-demo-{}", chrono::Utc::now().timestamp());
    let topics = TopicSettings {
        raw: format!("{run}.raw"),
        enriched: format!("{run}.enriched"),
        dead_letter: format!("{run}.dead-letter"),
        retry: format!("{run}.enrichment-retry"),
    };
    let kafka = KafkaSettings {
        brokers: args.brokers.clone(),
        ..KafkaSettings::default()
    };
    let admin = tributary_kafka::TopicAdmin::new(&kafka)?;
    for topic in topics.all() {
        admin.ensure(topic, 6, 1).await.with_context(|| {
            format!(
                "creating {topic} on {} (is deploy/local/up.sh running?)",
                args.brokers
            )
        })?;
    }
    let clickhouse = ClickHouseSettings {
        url: args.clickhouse_url.clone(),
        database: args.database.clone(),
        validation: args.clickhouse_validation,
        ..ClickHouseSettings::default()
    };
    let client = tributary_clickhouse::client(&clickhouse).with_database("default");
    for database in [clickhouse.database.clone(), clickhouse.pii_database()] {
        client
            .query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute()
            .await
            .with_context(|| format!("ClickHouse at {}", clickhouse.url))?;
    }

    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the demo's directory")?
        .to_path_buf();
    let mut options = Options::new(bin_dir, args.out.clone(), clickhouse.clone());
    options.brokers = args.brokers.clone();
    options.topics = topics.clone();
    options.group_prefix = run.clone();
    options.collector_port = args.port;
    options.templates_dir = std::env::current_dir()?.join("schemas/templates");
    println!(
        "Starting the fake CRM APIs and email verifier, the collector, the enricher and the activator (logs in {})",
        args.out.display()
    );
    let pipeline = Arc::new(Pipeline::start(&world, options).await?);

    println!(
        "Posting the webhooks to {} at {}/s",
        pipeline.collector_url, args.rate
    );
    let sending = bar(deliveries.len() as u64, "webhooks");
    let progress = sending.clone();
    let report = pipeline
        .send(
            &world,
            deliveries.clone(),
            Some(args.rate),
            args.concurrency,
            move |n| progress.set_position(n as u64),
        )
        .await?;
    sending.finish();
    println!(
        "  {} accepted, {} refused, {} tries delivered again, in {:.1} s ({:.0} webhooks/s)",
        report.accepted,
        report.refused.len(),
        report.retried,
        report.elapsed.as_secs_f64(),
        report.deliveries as f64 / report.elapsed.as_secs_f64()
    );
    for (status, body) in report.refused.iter().take(5) {
        println!("  refused {status}: {body}");
    }

    let expected = world.distinct_events() as u64;
    let loading = bar(expected, "loaded");
    let waited = Instant::now();
    pipeline
        .wait_until_loaded(expected, Duration::from_secs(120), |n| {
            loading.set_position(n)
        })
        .await?;
    loading.finish();
    println!(
        "  caught up {:.1} s after the last webhook",
        waited.elapsed().as_secs_f64()
    );

    let freshness = pipeline.freshness(Duration::ZERO).await?;
    // The first seconds fill the enricher's caches (every person, organization
    // and definition is new); after them, the steady state.
    let warm = pipeline.freshness(Duration::from_secs(10)).await?;
    let statuses = pipeline.enrichment_statuses().await?;
    let mut all_match = true;
    for tenant in &world.tenants {
        let scope = whole_world(&world, &tenant.name);
        let panels = pipeline.panels(&scope).await?;
        let checks = check_panels(&world, &scope, &panels);
        println!();
        println!(
            "Sales operations dashboard for {} (all pipelines), next to the ground truth computed from the world:",
            tenant.name
        );
        println!(
            "  {:<38} {:<28} {:>15} {:>15} {:>10}",
            "panel", "metric", "dashboard", "truth", "diff"
        );
        let mut comparison = Vec::new();
        for check in &checks {
            for total in &check.totals {
                let (dashboard, truth) = (
                    total.dashboard.as_f64().unwrap_or(f64::NAN),
                    total.truth.as_f64().unwrap_or(f64::NAN),
                );
                let title: String = check.title.chars().take(38).collect();
                println!(
                    "  {title:<38} {:<28} {:>15} {:>15} {:>10}",
                    total.metric,
                    thousands(dashboard),
                    thousands(truth),
                    thousands(dashboard - truth)
                );
            }
            comparison.extend(check.totals.iter().cloned());
            if !check.problems.is_empty() {
                all_match = false;
                println!("  {} differs from the truth:", check.title);
                for problem in check.problems.iter().take(10) {
                    println!("    {problem}");
                }
            }
        }
        let path = args
            .out
            .join(format!("sales-operations-{}.html", tenant.name));
        let mut page = Report::new(
            Header::new("Sales operations", &scope, chrono::Utc::now().timestamp()),
            panels,
        );
        page.facts = vec![
            Fact::new("Webhooks delivered", report.deliveries as u64),
            Fact::new("Events loaded", freshness.events),
            Fact::new("Freshness p50", freshness.p50_ms).with_unit("ms"),
            Fact::new("Freshness p99", freshness.p99_ms).with_unit("ms"),
            Fact::new("Freshness p99, caches warm", warm.p99_ms).with_unit("ms"),
            Fact::new("Throughput", freshness.events_per_second.round()).with_unit("events/s"),
        ];
        page.comparison = Some(comparison);
        page.write(&path)?;
        println!("  report: {}", path.display());
    }
    println!();
    println!(
        "{}",
        if all_match {
            "Every panel of every tenant shows exactly the ground truth."
        } else {
            "Some panels differ from the ground truth (listed above)."
        }
    );
    println!(
        "Freshness (webhook received -> row visible to a dashboard query) over {} events: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        freshness.events, freshness.p50_ms, freshness.p99_ms, freshness.max_ms
    );
    println!(
        "  after the first 10 s (caches warm), over {} events: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        warm.events, warm.p50_ms, warm.p99_ms, warm.max_ms
    );
    println!(
        "Throughput: {:.0} events/s through all three stages (offered {}/s); enrichment: {:?}",
        freshness.events_per_second, args.rate, statuses
    );

    if args.keep {
        println!();
        println!("The pipeline keeps running. Post your own webhooks, e.g.:");
        let tenant = &world.tenants[0];
        if let Some(account) = tenant.pipedrive() {
            println!(
                "  curl -u {}:{} -H 'content-type: application/json' --data-binary @tests/fixtures/pipedrive/v2/deal-change.json {}/webhooks/pipedrive/{}",
                account.webhook_user, account.webhook_password, pipeline.collector_url, tenant.name
            );
        }
        println!(
            "  TRIBUTARY_CONFIG={} target/release/tributary status",
            pipeline.config_path.display()
        );
        println!(
            "  TRIBUTARY_CONFIG={} target/release/tributary report --tenant {} --out report.html",
            pipeline.config_path.display(),
            tenant.name
        );
        println!("Stop with Ctrl-C.");
        tokio::signal::ctrl_c().await?;
    }
    pipeline.stop();
    anyhow::ensure!(all_match, "the dashboards do not show the ground truth");
    Ok(())
}
