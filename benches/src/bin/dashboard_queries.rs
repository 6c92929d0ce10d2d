//! Every panel query of the "Sales operations" dashboard, timed on a large
//! database: `--events` events (default 10 million: three quarters deal
//! changes, a quarter activities) spread over `--tenants` tenants, written
//! into `events` by ClickHouse itself so every materialized view is fed as
//! the activator feeds it. Each panel runs for the busiest tenant over the
//! whole history; prints the median and the slowest of `--runs` runs.
//!
//! Needs the local ClickHouse (`deploy/local/up.sh`); uses a fresh database.

use std::time::{Duration, Instant};

use clap::Parser;
use tributary_clickhouse::dashboard::{self, Scope};
use tributary_tests::clickhouse::TestDatabase;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    #[arg(long, default_value_t = 20)]
    tenants: u64,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keep the database afterwards (its name is printed) to try queries on it.
    #[arg(long)]
    keep: bool,
    /// Time the panels on a database kept by an earlier `--keep` run instead.
    #[arg(long)]
    database: Option<String>,
}

/// 2025-01-06T00:00:00Z; the history spans 120 days from here.
const START: i64 = 1_736_121_600;
const SPAN: i64 = 120 * 86_400;

/// Deal changes: each deal is added in its pipeline's first stage, moves
/// up two stages, then is won, lost or stays open. `{n}` rows.
fn deal_events(n: u64, tenants: u64) -> String {
    format!(
        "INSERT INTO tributary.events (pipeline_event_id, pipeline_tenant, pipeline_source, pipeline_enrichment_status,
            pipeline_received_at_micro, pipeline_enriched_at_micro, event_action, event_object, event_id,
            event_timestamp, event_timestamp_micro, deal_id, deal_stage_id, deal_stage_order_nr, deal_previous_stage_id,
            deal_pipeline_id, deal_owner_id, deal_title, deal_stage, deal_previous_stage, deal_previous_status,
            deal_pipeline, deal_currency, deal_status, deal_owner_name, deal_value, deal_probability,
            deal_stage_probability, deal_expected_close_date, deal_add_time, deal_update_time, deal_won_time,
            deal_lost_time, marketing_source, event_time, event_date, pipeline_template, pipeline_template_version,
            pipeline_loaded_at_micro, pipeline_first_copy)
        SELECT
            concat('deal-', toString(number)) AS id, concat('t', toString(number % {tenants})) AS tenant, 'pipedrive', 'complete',
            ts * 1000000, ts * 1000000, if(step = 0, 'added', 'updated'), 'deal', deal,
            ts, ts * 1000000, deal, stage, stage_order, if(step >= 1 AND step <= deal % 3, stage - 1, NULL),
            pipeline, 10 + deal % 8, concat('Deal ', toString(deal)), concat('Stage ', toString(stage)),
            if(step >= 1 AND step <= deal % 3, concat('Stage ', toString(stage - 1)), NULL), if(step = 3 AND status != 'open', 'open', NULL),
            if(pipeline = 1, 'Sales', 'Partners'), 'EUR', status, concat('Rep ', toString(10 + deal % 8)), value, NULL,
            stage_order * 20.0, toDate(added + 45 * 86400), toDateTime(added), toDateTime(ts),
            if(status = 'won', toDateTime(ts), NULL), if(status = 'lost', toDateTime(ts), NULL),
            arrayElement(['LinkedIn', 'Referral', 'Webinar', 'Ads'], 1 + deal % 4), toDateTime(ts), toDate(ts),
            'pipedrive-sales', 1, ts * 1000000, 1
        FROM (
            SELECT number,
                intDiv(number, {tenants} * 4) AS deal,
                intDiv(number, {tenants}) % 4 AS step,
                1 + deal % 2 AS pipeline,
                1 + least(step, deal % 3) AS stage_order,
                (pipeline - 1) * 10 + stage_order AS stage,
                if(step < 3, 'open', arrayElement(['won', 'lost', 'open', 'open'], 1 + intDiv(deal, 3) % 4)) AS status,
                {START} + (deal * 7919) % {SPAN} AS added,
                added + step * 3 * 86400 + number % 3600 AS ts,
                50.0 * (10 + deal % 390) AS value
            FROM numbers({n})
        )"
    )
}

/// Activities, done or not, by eight reps. `{n}` rows.
fn activity_events(n: u64, tenants: u64) -> String {
    format!(
        "INSERT INTO tributary.events (pipeline_event_id, pipeline_tenant, pipeline_source, pipeline_enrichment_status,
            pipeline_received_at_micro, pipeline_enriched_at_micro, event_action, event_object, event_id,
            event_timestamp, event_timestamp_micro, activity_id, activity_user_id, activity_type, activity_user_name,
            activity_done, activity_add_time, activity_marked_as_done_time, event_time, event_date, pipeline_template,
            pipeline_template_version, pipeline_loaded_at_micro, pipeline_first_copy)
        SELECT
            concat('activity-', toString(number)), concat('t', toString(number % {tenants})), 'pipedrive', 'complete',
            ts * 1000000, ts * 1000000, 'added', 'activity', number, ts, ts * 1000000, number, 10 + intDiv(number, {tenants}) % 8,
            arrayElement(['call', 'email', 'meeting', 'task'], 1 + number % 4), concat('Rep ', toString(10 + intDiv(number, {tenants}) % 8)),
            done, toDateTime(ts), if(done = 1, toDateTime(ts), NULL), toDateTime(ts), toDate(ts), 'pipedrive-sales', 1,
            ts * 1000000, 1
        FROM (
            SELECT number, {START} + (number * 104729) % {SPAN} AS ts, toUInt8(number % 10 < 7) AS done
            FROM numbers({n})
        )"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut db = match &args.database {
        Some(name) => TestDatabase::existing(name),
        None => {
            let db = TestDatabase::create("bench_dashboards").await;
            let deals = args.events / 4 * 3;
            let started = Instant::now();
            db.execute(&deal_events(deals, args.tenants)).await;
            db.execute(&activity_events(args.events - deals, args.tenants))
                .await;
            println!(
                "{} events ({} deal changes, {} activities, {} tenants) written with their views in {:.1} s",
                args.events,
                deals,
                args.events - deals,
                args.tenants,
                started.elapsed().as_secs_f64()
            );
            db
        }
    };
    db.keep |= args.keep;
    // Let the background merges of the load settle, as they would in a day's traffic.
    db.execute("OPTIMIZE TABLE tributary.deal_state").await;
    let rows = db
        .query("SELECT count() AS n FROM tributary.deal_state FINAL WHERE pipeline_tenant = 't0'")
        .await;
    println!("busiest tenant t0: {} deals", rows[0]["n"]);

    let scope = Scope {
        from: START - 86_400,
        to: START + SPAN + 30 * 86_400,
        tenant: "t0".into(),
        pipeline: None,
    };
    println!();
    println!("| panel | rows | median ms | slowest ms |");
    println!("|---|---|---|---|");
    let mut slowest_overall = Duration::ZERO;
    for panel in dashboard::sales_operations_panels()? {
        let sql = dashboard::expand(&panel.sql, &scope)?;
        let returned = db.query(&sql).await.len(); // warm-up
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            db.query(&sql).await;
            times.push(started.elapsed());
        }
        times.sort();
        let (median, slowest) = (times[times.len() / 2], times[times.len() - 1]);
        slowest_overall = slowest_overall.max(slowest);
        println!(
            "| {} | {returned} | {:.1} | {:.1} |",
            panel.title,
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        );
    }
    println!();
    println!(
        "slowest panel query: {:.1} ms (over HTTP, rows parsed)",
        slowest_overall.as_secs_f64() * 1e3
    );
    if db.keep {
        println!("kept database {}", db.name());
    }
    Ok(())
}
