//! The ClickHouse migrations and the activator's periodic job, on both
//! engines: ClickHouse 18.16 (the local server) and chdb-core 26.9.
#![cfg(feature = "clickhouse-tests")]

use serde_json::{Value, json};
use tributary_clickhouse::migrations::{MIGRATIONS, PIPELINE_DAILY_SNAPSHOT, split_statements};
use tributary_tests::chdb::Chdb;
use tributary_tests::clickhouse::TestDatabase;
use tributary_world::differences;

/// Two open deals in one stage and a won one, as deal_state rows.
const DEALS: &str = r#"{"pipeline_tenant":"acme","deal_id":1,"version":1,"is_deleted":0,"deal_pipeline_id":1,"deal_pipeline":"Sales","deal_stage_id":2,"deal_stage":"Contact Made","deal_stage_order_nr":2,"deal_stage_probability":25,"deal_status":"open","deal_value":1000}
{"pipeline_tenant":"acme","deal_id":2,"version":1,"is_deleted":0,"deal_pipeline_id":1,"deal_pipeline":"Sales","deal_stage_id":2,"deal_stage":"Contact Made","deal_stage_order_nr":2,"deal_stage_probability":25,"deal_probability":50,"deal_status":"open","deal_value":300}
{"pipeline_tenant":"acme","deal_id":3,"version":1,"is_deleted":0,"deal_pipeline_id":1,"deal_pipeline":"Sales","deal_stage_id":3,"deal_stage":"Proposal Made","deal_stage_order_nr":3,"deal_stage_probability":50,"deal_status":"won","deal_value":700}"#;

const SNAPSHOT: &str = "SELECT deal_stage, deals, value, weighted_value FROM tributary.pipeline_daily ORDER BY deal_stage_id";

/// The snapshot of [`DEALS`]: open deals only, a deal's own probability first.
fn assert_snapshot(rows: &[Value]) {
    let expected =
        json!({"deal_stage": "Contact Made", "deals": 2, "value": 1300, "weighted_value": 400});
    let expected = [expected.as_object().cloned().unwrap_or_default()];
    let problems = differences(rows, &expected);
    assert!(problems.is_empty(), "{problems:?}");
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

    db.execute(&format!(
        "INSERT INTO tributary.deal_state FORMAT JSONEachRow {DEALS}"
    ))
    .await;
    let sql = split_statements(PIPELINE_DAILY_SNAPSHOT).join("\n");
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
        "activity_daily",
        "deal_state",
        "event_ledger",
        "events",
        "pipeline_daily",
        "stage_entries",
        "stage_transitions",
        "won_by_source",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    chdb.insert_json_each_row("tributary.deal_state", DEALS.as_bytes());
    chdb.execute(&split_statements(PIPELINE_DAILY_SNAPSHOT).join("\n"));
    assert_snapshot(&chdb.query(SNAPSHOT));
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
    chdb.apply_migrations();
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
