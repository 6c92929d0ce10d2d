//! The ClickHouse migrations and the activator's periodic job, on both
//! engines: ClickHouse 18.16 (the local server) and chdb-core 26.9.
#![cfg(feature = "clickhouse-tests")]

use serde_json::{Value, json};
use tributary_clickhouse::migrations::{MIGRATIONS, PIPELINE_SNAPSHOT, split_statements};
use tributary_tests::chdb::Chdb;
use tributary_tests::clickhouse::TestDatabase;
use tributary_world::differences;

/// Three deals of acme in its home currency EUR: two open in one stage (one
/// with its own probability), one won; a fourth open one in CHF, which has
/// no rate; and stage 2's definition.
const DEALS: &str = r#"{"tenant":"acme","source":"pipedrive","account":"1","id":"1","version":1,"received":1,"known":["deleted","merged_into","status","pipeline_id","stage_id","amount","currency"],"deleted":0,"merged_into":null,"status":"open","pipeline_id":"1","stage_id":"2","amount":1000,"currency":"EUR"}
{"tenant":"acme","source":"pipedrive","account":"1","id":"2","version":1,"received":1,"known":["deleted","merged_into","status","pipeline_id","stage_id","amount","currency","probability"],"deleted":0,"merged_into":null,"status":"open","pipeline_id":"1","stage_id":"2","amount":300,"currency":"USD","probability":50}
{"tenant":"acme","source":"pipedrive","account":"1","id":"3","version":1,"received":1,"known":["deleted","merged_into","status","pipeline_id","stage_id","amount","currency"],"deleted":0,"merged_into":null,"status":"won","pipeline_id":"1","stage_id":"3","amount":700,"currency":"EUR"}
{"tenant":"acme","source":"pipedrive","account":"1","id":"4","version":1,"received":1,"known":["deleted","merged_into","status","pipeline_id","stage_id","amount","currency"],"deleted":0,"merged_into":null,"status":"open","pipeline_id":"1","stage_id":"2","amount":5000,"currency":"CHF"}"#;
const STAGES: &str = r#"{"tenant":"acme","source":"pipedrive","account":"1","id":"2","version":1,"pipeline_id":"1","name":"Contact Made","display_order":2,"probability":25,"outcome":"open","archived":0}"#;
const RATES: &str = r#"{"tenant":"acme","currency":"EUR","origin":"configuration","home_currency":"EUR","rate":1,"updated_at":"2025-01-01 00:00:00"}
{"tenant":"acme","currency":"USD","origin":"configuration","home_currency":"EUR","rate":0.5,"updated_at":"2025-01-01 00:00:00"}"#;

/// What the activator does after loading deal changes, for every deal.
const REFRESH_DEALS: &str =
    "INSERT INTO tributary.current_deals SELECT * FROM tributary.deals_resolved";

const SNAPSHOT: &str = "SELECT stage_id, home_currency, deals, value, weighted_value, unconverted_deals FROM tributary.pipeline_snapshots ORDER BY stage_id";

/// The snapshot of [`DEALS`]: open deals only, in EUR, a deal's own
/// probability first, the CHF deal counted but not summed.
fn assert_snapshot(rows: &[Value]) {
    let expected = json!({"stage_id": "2", "home_currency": "EUR", "deals": 3, "value": 1150,
        "weighted_value": 325, "unconverted_deals": 1});
    let expected = [expected.as_object().cloned().unwrap_or_default()];
    let problems = differences(rows, &expected);
    assert!(problems.is_empty(), "{problems:?} in {rows:?}");
}

#[tokio::test]
async fn migrations_apply_once_and_a_second_run_changes_nothing_on_clickhouse_18() {
    let db = TestDatabase::create("migrations").await;
    let client = tributary_clickhouse::client(&db.settings);
    let again = tributary_clickhouse::apply_migrations(&client, &db.settings)
        .await
        .expect("a second run");
    assert!(again.is_empty(), "nothing left to apply: {again:?}");
    let recorded = db
        .query("SELECT version FROM tributary.schema_migrations ORDER BY version")
        .await;
    let expected: Vec<_> = MIGRATIONS
        .iter()
        .map(|m| json!({"version": m.version}))
        .collect();
    assert_eq!(recorded, expected, "each migration recorded once");

    for (table, rows) in [
        ("deal_changes", DEALS),
        ("stages", STAGES),
        ("currency_rates", RATES),
    ] {
        db.execute(&format!(
            "INSERT INTO tributary.{table} FORMAT JSONEachRow {rows}"
        ))
        .await;
    }
    db.execute(REFRESH_DEALS).await;
    let sql = split_statements(PIPELINE_SNAPSHOT).join("\n");
    db.execute(&sql).await;
    assert_snapshot(&db.query(SNAPSHOT).await);
}

#[test]
fn every_migration_and_the_snapshot_job_run_on_a_modern_engine() {
    let mut chdb = Chdb::open();
    chdb.apply_migrations();
    // Every statement is idempotent: running them all again is harmless.
    chdb.apply_migrations();
    let tables: Vec<String> = chdb
        .query("SELECT name FROM system.tables WHERE database = 'tributary' ORDER BY name")
        .into_iter()
        .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for table in [
        "activities",
        "companies",
        "contacts",
        "currency_rates",
        "current_activities",
        "current_companies",
        "current_contacts",
        "current_deals",
        "current_users",
        "custom_field_definitions",
        "custom_field_values",
        "deal_stage_transitions",
        "deals",
        "event_log",
        "load_ledger",
        "pipeline_snapshots",
        "pipelines",
        "stages",
        "users",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    chdb.insert_json_each_row("tributary.deal_changes", DEALS.as_bytes());
    chdb.insert_json_each_row("tributary.stages", STAGES.as_bytes());
    chdb.insert_json_each_row("tributary.currency_rates", RATES.as_bytes());
    chdb.execute(REFRESH_DEALS);
    chdb.execute(&split_statements(PIPELINE_SNAPSHOT).join("\n"));
    assert_snapshot(&chdb.query(SNAPSHOT));
}

/// Changes of one deal: a full first state, a partial change that knows only
/// the stage, an older change arriving late, an explicit null, a tombstone,
/// and a late update after it.
const CHANGES: [&str; 6] = [
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":100,"received":1,"known":["deleted","title","amount","stage_id","lost_reason"],"deleted":0,"title":"Omni","amount":1500.25,"stage_id":"a","lost_reason":"Price"}"#,
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":300,"received":2,"known":["stage_id"],"stage_id":"c"}"#,
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":200,"received":3,"known":["stage_id","title"],"stage_id":"b","title":"Omni (old)"}"#,
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":250,"received":4,"known":["lost_reason"],"lost_reason":null}"#,
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":400,"received":5,"known":["deleted"],"deleted":1}"#,
    r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","version":350,"received":6,"known":["deleted","title"],"deleted":0,"title":"Omni (late)"}"#,
];

const STATE: &str = "SELECT id, argMaxMerge(title) AS title, toFloat64(argMaxMerge(amount).1) AS amount, argMaxMerge(stage_id).1 AS stage, argMaxMerge(lost_reason) AS lost_reason, argMaxMerge(deleted).1 AS deleted FROM tributary.deals GROUP BY id";

/// The same deal as resolved by the view and as kept in the current table.
const RESOLVED: &str = "SELECT id, changes, title, toFloat64(amount) AS amount, stage_id AS stage, lost_reason, deleted FROM tributary.deals_resolved";
const CURRENT: &str = "SELECT id, changes, title, toFloat64(amount) AS amount, stage_id AS stage, lost_reason, deleted FROM tributary.current_deals FINAL";

fn assert_state(engine: &str, rows: &[Value]) {
    // The title of the newest change that knew it (350, after the tombstone's
    // 400 but newer than 200); the amount nobody changed again; the stage of
    // version 300, not the late 200; the explicit null; still deleted.
    let expected = json!({"id": "1234567890123456789", "title": ["Omni (late)", 1],
        "amount": 1500.25, "stage": "c", "lost_reason": ["", 0], "deleted": 1});
    assert_eq!(rows, [expected], "{engine}");
}

/// The resolved row: the values of [`assert_state`], null as empty, and
/// how many changes were merged.
fn assert_resolved(engine: &str, rows: &[Value], changes: usize) {
    let expected = json!({"id": "1234567890123456789", "changes": changes, "title": "Omni (late)",
        "amount": 1500.25, "stage": "c", "lost_reason": "", "deleted": 1});
    assert_eq!(rows, [expected], "{engine}");
}

#[tokio::test]
async fn entities_merge_field_by_field_by_version_on_both_engines() {
    let db = TestDatabase::create("field_merge").await;
    let mut chdb = Chdb::open();
    chdb.apply_migrations();
    // One at a time, then all again in one insert, in reverse order: the
    // result is the same.
    for change in CHANGES {
        db.execute(&format!(
            "INSERT INTO tributary.deal_changes FORMAT JSONEachRow {change}"
        ))
        .await;
        chdb.insert_json_each_row("tributary.deal_changes", change.as_bytes());
    }
    let again: Vec<&str> = CHANGES.iter().rev().copied().collect();
    let again = again.join("\n");
    db.execute(&format!(
        "INSERT INTO tributary.deal_changes FORMAT JSONEachRow {again}"
    ))
    .await;
    chdb.insert_json_each_row("tributary.deal_changes", again.as_bytes());
    assert_state("ClickHouse 18.16", &db.query(STATE).await);
    assert_state("chdb 26.9", &chdb.query(STATE));
    let merged = 2 * CHANGES.len();
    assert_resolved("ClickHouse 18.16", &db.query(RESOLVED).await, merged);
    assert_resolved("chdb 26.9", &chdb.query(RESOLVED), merged);

    // The current table keeps the row resolved from the most changes, even
    // when a refresh that read fewer lands after it.
    let fresh = "INSERT INTO tributary.current_deals SELECT * FROM tributary.deals_resolved";
    let stale = r#"{"tenant":"acme","source":"hubspot","account":"62515","id":"1234567890123456789","changes":1,"title":"Omni","amount":1500.25,"stage_id":"a","lost_reason":"Price","deleted":0}"#;
    db.execute(fresh).await;
    db.execute(&format!(
        "INSERT INTO tributary.current_deals FORMAT JSONEachRow {stale}"
    ))
    .await;
    chdb.execute(fresh);
    chdb.insert_json_each_row("tributary.current_deals", stale.as_bytes());
    assert_resolved("ClickHouse 18.16", &db.query(CURRENT).await, merged);
    assert_resolved("chdb 26.9", &chdb.query(CURRENT), merged);
}

#[test]
fn a_merge_survivor_marked_deleted_before_migration_10_is_restored_by_it() {
    let mut chdb = Chdb::open();
    chdb.apply_migrations_through(9);
    let merged = r#"{"pipeline_event_id":"m1","pipeline_tenant":"acme","pipeline_source":"pipedrive","pipeline_enrichment_status":"complete","event_action":"merged","event_object":"deal","event_timestamp":1741098151,"event_timestamp_micro":1741098151000000,"deal_id":1207,"deal_status":"open","deal_value":21900,"event_time":"2025-03-04 14:22:31","event_date":"2025-03-04","pipeline_first_copy":1}"#;
    chdb.insert_json_each_row("tributary.events", merged.as_bytes());
    let state = "SELECT deal_id, is_deleted, deal_value FROM tributary.deal_state FINAL";
    let before = chdb.query(state);
    assert_eq!(
        before[0]["is_deleted"], 1,
        "the old view took the survivor for deleted"
    );
    chdb.apply_migrations_through(10);
    let after = chdb.query(state);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["is_deleted"], 0, "restored: {after:?}");
    assert_eq!(after[0]["deal_value"], 21900);
    // New merge events no longer delete their survivor.
    let next = merged.replace("\"m1\"", "\"m2\"").replace("1207", "1208");
    chdb.insert_json_each_row("tributary.events", next.as_bytes());
    let survivor =
        chdb.query("SELECT is_deleted FROM tributary.deal_state FINAL WHERE deal_id = 1208");
    assert_eq!(survivor, [json!({"is_deleted": 0})]);
}
