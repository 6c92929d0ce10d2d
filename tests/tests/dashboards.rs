//! Every panel of the shipped "Sales operations" dashboard, its variables and
//! time macros expanded as Grafana's ClickHouse data source expands them, run
//! against a generated sales world whose answers are computed from the world
//! itself: on ClickHouse 18.16 (the local server) and on chdb-core 26.9 (a
//! modern engine) with the same numbers, and unchanged when the same events
//! arrive again, and again shuffled.
#![cfg(feature = "clickhouse-tests")]

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tributary_activator::load::{Inserted, Target, refresh_statements};
use tributary_clickhouse::dashboard::{self, Panel, Scope};
use tributary_model::Key;
use tributary_tests::activator::load_in_process;
use tributary_tests::chdb::Chdb;
use tributary_tests::clickhouse::TestDatabase;
use tributary_world::{
    ActivityState, DEFAULT_START as START, Subject, World, WorldConfig, differences,
};

const SEED: u64 = 20_250_106;
const DAY: i64 = 86_400;

/// The views the test checks: everything, one pipeline in a window, a tenant
/// too small to calibrate, and a window that ends mid-history.
fn scopes() -> Vec<Scope> {
    let scope = |tenant: &str, pipeline: Option<String>, from, to| Scope {
        from,
        to,
        tenant: tenant.into(),
        pipeline,
    };
    let world = World::generate(WorldConfig::sample(SEED));
    let pipeline = |id: &str| {
        let north = world.tenant("north");
        let pipeline = north
            .pipelines
            .iter()
            .find(|p| p.id == id)
            .expect("a pipeline of north");
        Some(north.pipeline_key(pipeline))
    };
    vec![
        scope("north", None, START - DAY, START + 200 * DAY),
        scope(
            "north",
            pipeline("2"),
            START + 20 * DAY,
            START + 60 * DAY - 1,
        ),
        scope(
            "north",
            pipeline("1"),
            START + 5 * DAY + 3_600,
            START + 45 * DAY,
        ),
        scope("south", None, START - DAY, START + 200 * DAY),
        scope("harbor", None, START - DAY, START + 200 * DAY),
        scope("harbor", None, START + 20 * DAY, START + 60 * DAY - 1),
    ]
}

fn payloads(events: &[Value]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| serde_json::to_vec(e).expect("json"))
        .collect()
}

fn panels() -> Vec<Panel> {
    dashboard::sales_operations_panels().expect("the shipped dashboard parses")
}

async fn on_server(db: &TestDatabase, scope: &Scope) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for panel in panels() {
        let sql = dashboard::expand(&panel.sql, scope).expect("expands");
        out.insert(panel.title.clone(), db.query(&sql).await);
    }
    out
}

fn on_chdb(chdb: &mut Chdb, scope: &Scope) -> BTreeMap<String, Vec<Value>> {
    let panels = panels();
    let statements: Vec<String> = panels
        .iter()
        .map(|p| dashboard::expand(&p.sql, scope).expect("expands"))
        .collect();
    panels
        .iter()
        .map(|p| p.title.clone())
        .zip(chdb.run(&statements))
        .collect()
}

/// Every panel's rows against the world's answers; panics listing every difference.
fn assert_matches_world(
    engine: &str,
    world: &World,
    scope: &Scope,
    got: &BTreeMap<String, Vec<Value>>,
) {
    let expected = world.expected_panels(scope);
    let mut problems = Vec::new();
    for panel in panels() {
        let want = expected
            .get(panel.title.as_str())
            .unwrap_or_else(|| panic!("the world has no answer for panel {:?}", panel.title));
        for difference in differences(&got[&panel.title], want) {
            problems.push(format!("{}: {difference}", panel.title));
        }
    }
    assert!(
        problems.is_empty(),
        "{engine}, {scope:?}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_world_exercises_what_the_panels_must_get_right() {
    let world = World::generate(WorldConfig::sample(SEED));
    let north = world.tenant("north");
    let south = world.tenant("south");
    assert!(north.closed_deals() >= 50, "north calibrates");
    assert!(south.closed_deals() < 50, "south does not");
    let deals = || world.tenants.iter().flat_map(|t| &t.deals);
    assert!(deals().any(|d| d.deleted), "some deals are deleted");
    assert!(
        deals().any(|d| d.merged_into.is_some()),
        "some deals are merged into another"
    );
    assert!(
        deals().any(|d| d.wins >= 2),
        "some wins are reversed and won again"
    );
    for (currency, rate) in tributary_world::FOREIGN_CURRENCIES {
        assert!(
            deals().any(|d| d.currency == currency && !d.deleted && d.last.status == "open"),
            "some open deals are in {currency} (rate {rate:?})"
        );
    }
    assert!(
        deals().any(|d| d.entries.windows(2).any(|w| w[1].1 < w[0].1)),
        "some deals move back a stage"
    );
    assert!(
        deals().any(|d| d.probability.is_some()),
        "some deals override the stage probability"
    );
    assert!(
        world
            .tenants
            .iter()
            .flat_map(|t| &t.activities)
            .any(|a| a.last.done_at.is_none()),
        "some activities are not done"
    );
    // Done activities later reassigned, retyped, moved to another day,
    // undone or deleted: each must count once, where it is now.
    let edits: Vec<(&ActivityState, Option<&ActivityState>)> = world
        .changes
        .iter()
        .filter_map(|c| match &c.subject {
            Subject::Activity {
                before: Some(before),
                after,
                ..
            } if before.done_at.is_some() => Some((before, after.as_ref())),
            _ => None,
        })
        .collect();
    let seen = |what: &str, test: &dyn Fn(&ActivityState, Option<&ActivityState>) -> bool| {
        assert!(
            edits.iter().any(|(before, after)| test(before, *after)),
            "some done activities are {what}"
        );
    };
    seen("reassigned", &|b, a| a.is_some_and(|a| a.user != b.user));
    seen("retyped", &|b, a| a.is_some_and(|a| a.kind != b.kind));
    seen("moved to another day", &|b, a| {
        a.is_some_and(|a| a.done_at.is_some() && a.done_at != b.done_at)
    });
    seen("undone", &|_, a| a.is_some_and(|a| a.done_at.is_none()));
    seen("deleted", &|_, a| a.is_none());
    for scope in scopes() {
        let expected = world.expected_panels(&scope);
        let empty: Vec<&str> = expected
            .iter()
            .filter(|(_, rows)| rows.is_empty())
            .map(|(title, _)| *title)
            .collect();
        let calibration_only = empty
            == ["Win probability: CRM vs. calibrated from this tenant's history"]
            && scope.tenant == "south";
        assert!(
            empty.is_empty() || calibration_only,
            "every panel has rows to compare for {scope:?}: empty {empty:?}"
        );
    }
}

/// The activator's refreshes of the current rows after `load`: one set per
/// entity table, of the records its rows change.
fn refreshes(load: &[Inserted]) -> Vec<String> {
    let mut statements = Vec::new();
    for inserted in load {
        let Target::Record(table) = inserted.target else {
            continue;
        };
        let Some(current) = table.current() else {
            continue;
        };
        let keys: BTreeSet<Key> = inserted
            .rows
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                let row: Value = serde_json::from_slice(line).expect("a JSON row");
                let text = |name: &str| row[name].as_str().expect("a key column").to_owned();
                Key {
                    tenant: text("tenant"),
                    source: text("source"),
                    account: text("account"),
                    id: text("id"),
                }
            })
            .collect();
        statements.extend(refresh_statements("tributary", current, &keys));
    }
    statements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_shows_the_worlds_numbers_on_clickhouse_18_and_on_a_modern_engine() {
    let world = World::generate(WorldConfig::sample(SEED));
    let payloads = payloads(&world.enriched_events());
    let db = TestDatabase::create("dashboards").await;
    let loads = load_in_process(&db.settings, &world.tenants_toml(), &payloads, 500).await;

    // The same inserts, into the modern engine: its views build the same tables.
    let mut chdb = Chdb::open();
    chdb.apply_migrations();
    for load in &loads {
        for inserted in load {
            chdb.insert_json_each_row(&inserted.target.default_name(), &inserted.rows);
        }
        // And, as the activator does after each load, the current rows of
        // the records it changed.
        for sql in refreshes(load) {
            chdb.execute(&sql);
        }
    }
    // And the currency rates the activator wrote from its configuration.
    let mut rates = Vec::new();
    for row in db.query("SELECT * FROM tributary.currency_rates").await {
        serde_json::to_writer(&mut rates, &row).expect("json");
        rates.push(b'\n');
    }
    chdb.insert_json_each_row("tributary.currency_rates", &rates);

    for scope in scopes() {
        let server = on_server(&db, &scope).await;
        assert_matches_world("ClickHouse 18.16", &world, &scope, &server);
        let modern = on_chdb(&mut chdb, &scope);
        assert_matches_world("chdb 26.9", &world, &scope, &modern);
    }

    // The dashboard's variables list the tenants and, per tenant, the pipelines.
    let definition: Value =
        serde_json::from_str(dashboard::SALES_OPERATIONS_JSON).expect("the dashboard parses");
    let variables = definition["templating"]["list"]
        .as_array()
        .expect("variables");
    let query = |name: &str| {
        let variable = variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("variable {name}"));
        variable["query"]
            .as_str()
            .expect("a query")
            .replace("${tenant:singlequote}", "'north'")
    };
    let tenants = db.query(&query("tenant")).await;
    assert_eq!(
        tenants
            .iter()
            .map(|r| r["tenant"].clone())
            .collect::<Vec<_>>(),
        ["harbor", "north", "south"]
    );
    let pipelines = db.query(&query("pipeline")).await;
    let options = |rows: Vec<Value>| -> Vec<Vec<Value>> {
        rows.into_iter()
            .map(|r| r.as_object().expect("a row").values().cloned().collect())
            .collect()
    };
    let north = world.tenant("north");
    let expected: Vec<Vec<Value>> = north
        .pipelines
        .iter()
        .map(|p| vec![json!(north.pipeline_key(p)), json!(p.name)])
        .collect();
    assert_eq!(options(pipelines), expected, "value and label per pipeline");
    assert_eq!(options(chdb.query(&query("pipeline"))), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_events_again_and_shuffled_leave_every_panel_unchanged() {
    let world = World::generate(WorldConfig::sample(SEED));
    let payloads = payloads(&world.enriched_events());
    let mut shuffled = payloads.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(SEED));

    // In order; then the whole stream again in one batch, then shuffled in small batches.
    let replayed = TestDatabase::create("dashboards_replay").await;
    let tenants = world.tenants_toml();
    load_in_process(&replayed.settings, &tenants, &payloads, 500).await;
    let mut before = Vec::new();
    for scope in scopes() {
        before.push(on_server(&replayed, &scope).await);
    }
    load_in_process(&replayed.settings, &tenants, &payloads, payloads.len()).await;
    load_in_process(&replayed.settings, &tenants, &shuffled, 97).await;

    // Only ever shuffled: every change arrives out of order.
    let out_of_order = TestDatabase::create("dashboards_shuffled").await;
    load_in_process(&out_of_order.settings, &tenants, &shuffled, 97).await;

    for (scope, before) in scopes().iter().zip(before) {
        let after = on_server(&replayed, scope).await;
        assert_matches_world("after replays", &world, scope, &after);
        assert_eq!(after, before, "{scope:?}");
        let shuffled = on_server(&out_of_order, scope).await;
        assert_matches_world("loaded out of order", &world, scope, &shuffled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_health_panels_count_partial_events_and_what_they_miss() {
    let world = World::generate(WorldConfig::sample(SEED));
    let mut events: Vec<Value> = world
        .enriched_events()
        .into_iter()
        .filter(|e| e["pipeline_tenant"] == "north")
        .take(12)
        .collect();
    // Five partial events: all miss the stage, the first two the person too.
    for (i, event) in events.iter_mut().take(5).enumerate() {
        event["pipeline_enrichment_status"] = json!("partial");
        event["pipeline_enrichment_missing"] = if i < 2 {
            json!(["stage", "person"])
        } else {
            json!(["stage"])
        };
    }
    // The first one's complete copy arrives later: it is partial no more.
    let mut healed = world
        .enriched_events()
        .into_iter()
        .find(|e| e["pipeline_event_id"] == events[0]["pipeline_event_id"])
        .expect("the same event");
    healed["pipeline_enriched_at_micro"] = json!(
        events[0]["pipeline_enriched_at_micro"]
            .as_i64()
            .unwrap_or_default()
            + 1
    );
    let received = |i: usize| {
        events[i]["pipeline_received_at_micro"]
            .as_i64()
            .expect("time")
    };
    let oldest =
        |range: std::ops::Range<usize>| range.map(received).min().expect("events") / 1_000_000;
    let (oldest_partial, oldest_person) = (oldest(1..5), oldest(1..2));

    let db = TestDatabase::create("pipeline_health").await;
    let mut loads =
        load_in_process(&db.settings, &world.tenants_toml(), &payloads(&events), 100).await;
    loads.extend(
        load_in_process(
            &db.settings,
            &world.tenants_toml(),
            &payloads(&[healed]),
            100,
        )
        .await,
    );
    let mut chdb = Chdb::open();
    chdb.apply_migrations();
    for load in &loads {
        for inserted in load {
            chdb.insert_json_each_row(&inserted.target.default_name(), &inserted.rows);
        }
    }

    let scope = Scope {
        from: START,
        to: START + DAY,
        tenant: "north".into(),
        pipeline: None,
    };
    let panels = dashboard::pipeline_health_panels().expect("the shipped dashboard parses");
    let statements: Vec<String> = panels
        .iter()
        .map(|p| dashboard::expand(&p.sql, &scope).expect("expands"))
        .collect();
    let modern = chdb.run(&statements);
    let time = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .expect("a time")
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    for (engine, rows) in [
        ("ClickHouse 18.16", {
            let mut all = Vec::new();
            for sql in &statements {
                all.push(db.query(sql).await);
            }
            all
        }),
        ("chdb", modern),
    ] {
        let stat = &rows[0][0];
        assert_eq!(stat["partial_events"], 4, "{engine}: {stat}");
        assert_eq!(stat["events"], 12, "{engine}: {stat}");
        let age = stat["oldest_partial_age_seconds"].as_i64().expect("age");
        let expected_age = chrono::Utc::now().timestamp() - oldest_partial;
        assert!(
            (expected_age - 5..=expected_age + 5).contains(&age),
            "{engine}: age {age}, want about {expected_age}"
        );
        assert_eq!(
            rows[1],
            vec![
                json!({"missing": "stage", "events": 4, "oldest_received": time(oldest_partial)}),
                json!({"missing": "person", "events": 1, "oldest_received": time(oldest_person)}),
            ],
            "{engine}"
        );
    }
}
