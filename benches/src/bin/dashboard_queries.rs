//! Every panel query of the "Sales operations" dashboard, timed on a large
//! database: `--events` events (default 10 million: three quarters deal
//! changes, a quarter activities) spread over `--tenants` tenants, half of
//! them Pipedrive accounts (won and lost as a status) and half HubSpot
//! portals (won and lost as closed stages), written by ClickHouse itself
//! into the canonical model's input tables, so every materialized view is
//! fed as the activator feeds it, with the stage transitions, stages,
//! pipelines, users and currency rates they imply. Each panel runs for the
//! busiest tenant of each source over the whole history; prints the median
//! and the slowest of `--runs` runs.
//!
//! Needs the local ClickHouse (`deploy/local/up.sh`); uses a fresh database.

use std::time::{Duration, Instant};

use clap::Parser;
use tributary_clickhouse::dashboard::{self, Scope};
use tributary_model::Table;
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

/// Deal changes, `{n}` of them: each deal is added in its pipeline's first
/// stage, moves up to two stages, then is won, lost or stays open; one in
/// ten is in USD, the rest in EUR.
fn deal_rows(n: u64, tenants: u64) -> String {
    format!(
        "SELECT number,
            concat('t', toString(number % {tenants})) AS tenant,
            if(number % {tenants} % 2 = 0, 'pipedrive', 'hubspot') AS source,
            intDiv(number, {tenants} * 4) AS deal,
            intDiv(number, {tenants}) % 4 AS step,
            1 + deal % 2 AS pipeline,
            1 + least(step, deal % 3) AS stage_order,
            (pipeline - 1) * 10 + stage_order AS open_stage,
            if(step < 3, 'open', arrayElement(['won', 'lost', 'open', 'open'], 1 + intDiv(deal, 3) % 4)) AS status,
            -- A HubSpot deal closes by entering its pipeline's won or lost stage.
            multiIf(source = 'hubspot' AND status = 'won', (pipeline - 1) * 10 + 5,
                    source = 'hubspot' AND status = 'lost', (pipeline - 1) * 10 + 6, open_stage) AS stage,
            {START} + (deal * 7919) % {SPAN} AS added,
            added + step * 3 * 86400 + number % 3600 AS ts,
            50.0 * (10 + deal % 390) AS value,
            if(deal % 10 = 0, 'USD', 'EUR') AS currency
        FROM numbers({n})"
    )
}

fn deal_changes(n: u64, tenants: u64) -> String {
    format!(
        "INSERT INTO tributary.deal_changes (tenant, source, account, id, version, received, known,
            deleted, merged_into, title, amount, amount_text, currency, pipeline_id, stage_id, status,
            expected_close_date, created_at, won_at, lost_at, closed_at, owner_id, company_id,
            marketing_source, updated_at)
        SELECT tenant, source, '1', toString(deal), ts * 1000000, ts * 1000000,
            ['deleted', 'merged_into', 'title', 'amount', 'amount_text', 'currency', 'pipeline_id', 'stage_id',
             'status', 'expected_close_date', 'created_at', 'won_at', 'lost_at', 'closed_at', 'owner_id',
             'company_id', 'marketing_source', 'updated_at'],
            0, NULL, concat('Deal ', toString(deal)), toDecimal64(value, 4), toString(value), currency,
            toString(pipeline), toString(stage), status, toDate(added + 45 * 86400), toDateTime(added),
            if(status = 'won', toDateTime(ts), NULL), if(status = 'lost', toDateTime(ts), NULL),
            if(status = 'open', NULL, toDateTime(ts)), toString(10 + deal % 8), toString(1000 + deal % 500),
            arrayElement(['LinkedIn', 'Referral', 'Webinar', 'Ads'], 1 + deal % 4), toDateTime(ts)
        FROM ({rows})",
        rows = deal_rows(n, tenants)
    )
}

/// A transition for each stage entered and each status change.
fn transitions(n: u64, tenants: u64) -> String {
    format!(
        "INSERT INTO tributary.deal_stage_transitions
        SELECT tenant, source, '1', toString(deal), ts * 1000000, toDateTime(ts), toString(pipeline),
            if(step = 0, '', toString(if(step <= deal % 3, open_stage - 1, open_stage))), toString(stage),
            if(step = 0, '', 'open'), status, 'app'
        FROM ({rows})
        WHERE step = 0 OR step <= deal % 3 OR (step = 3 AND status != 'open')",
        rows = deal_rows(n, tenants)
    )
}

/// Activities, done or not, by eight reps. `{n}` rows.
fn activity_changes(n: u64, tenants: u64) -> String {
    format!(
        "INSERT INTO tributary.activity_changes (tenant, source, account, id, version, received, known,
            deleted, merged_into, kind, raw_type, done, done_at, owner_id, created_at, updated_at)
        SELECT concat('t', toString(number % {tenants})), if(number % {tenants} % 2 = 0, 'pipedrive', 'hubspot'),
            '1', toString(number), ts * 1000000, ts * 1000000,
            ['deleted', 'merged_into', 'kind', 'raw_type', 'done', 'done_at', 'owner_id', 'created_at', 'updated_at'],
            0, NULL, kind, kind, done, if(done = 1, toDateTime(ts), NULL),
            toString(10 + intDiv(number, {tenants}) % 8), toDateTime(ts), toDateTime(ts)
        FROM (
            SELECT number, {START} + (number * 104729) % {SPAN} AS ts, toUInt8(number % 10 < 7) AS done,
                arrayElement(['call', 'email', 'meeting', 'task'], 1 + number % 4) AS kind
            FROM numbers({n})
        )"
    )
}

/// Each tenant's two pipelines, their stages (four open ones, and closed
/// won and lost ones that HubSpot deals enter), eight reps and its rates.
fn definitions(tenants: u64) -> Vec<String> {
    let source = "if(number % {tenants} % 2 = 0, 'pipedrive', 'hubspot')"
        .replace("{tenants}", &tenants.to_string());
    vec![
        format!(
            "INSERT INTO tributary.pipelines SELECT concat('t', toString(number % {tenants})), {source}, '1',
                toString(1 + intDiv(number, {tenants})), 1, if(intDiv(number, {tenants}) = 0, 'Sales', 'Partners'),
                intDiv(number, {tenants}), 0
            FROM numbers({tenants} * 2)"
        ),
        format!(
            "INSERT INTO tributary.stages SELECT concat('t', toString(number % {tenants})), {source}, '1',
                toString(pipeline * 10 - 10 + stage_order), 1, toString(pipeline),
                concat('Stage ', toString(pipeline * 10 - 10 + stage_order)), stage_order,
                multiIf(stage_order = 5, 100.0, stage_order = 6, 0.0, stage_order * 20.0),
                multiIf(stage_order = 5, 'won', stage_order = 6, 'lost', 'open'), 0
            FROM (SELECT number, 1 + intDiv(number, {tenants}) % 2 AS pipeline, 1 + intDiv(number, {tenants} * 2) AS stage_order
                  FROM numbers({tenants} * 12))"
        ),
        format!(
            "INSERT INTO tributary.user_changes (tenant, source, account, id, version, received, known, name)
            SELECT concat('t', toString(number % {tenants})), {source}, '1', toString(10 + intDiv(number, {tenants})),
                1, 1, ['name'], concat('Rep ', toString(10 + intDiv(number, {tenants})))
            FROM numbers({tenants} * 8)"
        ),
        format!(
            "INSERT INTO tributary.currency_rates SELECT concat('t', toString(number % {tenants})),
                if(number < {tenants}, 'EUR', 'USD'), 'configuration', 'EUR', if(number < {tenants}, 1.0, 0.875), now()
            FROM numbers({tenants} * 2)"
        ),
    ]
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
            db.execute(&deal_changes(deals, args.tenants)).await;
            db.execute(&transitions(deals, args.tenants)).await;
            db.execute(&activity_changes(args.events - deals, args.tenants))
                .await;
            for sql in definitions(args.tenants) {
                db.execute(&sql).await;
            }
            // What the activator does after each load, for every record at
            // once, a tenant at a time (each fits in memory).
            for table in Table::ALL {
                let Some(current) = table.current() else {
                    continue;
                };
                for tenant in 0..args.tenants {
                    db.execute(&format!(
                        "INSERT INTO tributary.{} SELECT * FROM tributary.{} WHERE tenant = 't{tenant}' \
                         SETTINGS enable_optimize_predicate_expression = 1",
                        current.table, current.resolved
                    ))
                    .await;
                }
            }
            println!(
                "{} events ({} deal changes, {} activities, {} tenants) written with their views and current rows in {:.1} s",
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
    for table in [
        "current_deals",
        "current_activities",
        "current_users",
        "deal_stage_transitions",
    ] {
        db.execute(&format!("OPTIMIZE TABLE tributary.{table}"))
            .await;
    }
    let mut slowest_overall = Duration::ZERO;
    // The busiest Pipedrive tenant and the busiest HubSpot one.
    for tenant in ["t0", "t1"] {
        let rows = db
        .query(&format!("SELECT any(source) AS source, uniqExact(id) AS n FROM tributary.deals WHERE tenant = '{tenant}'"))
        .await;
        println!();
        println!(
            "tenant {tenant} ({}): {} deals",
            rows[0]["source"], rows[0]["n"]
        );

        let scope = Scope {
            from: START - 86_400,
            to: START + SPAN + 30 * 86_400,
            tenant: tenant.into(),
            pipeline: None,
        };
        println!();
        println!("| panel | rows | median ms | slowest ms |");
        println!("|---|---|---|---|");
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
