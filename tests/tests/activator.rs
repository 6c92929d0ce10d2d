//! The activator as a real process between the broker and ClickHouse.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_clickhouse::dashboard::{self, Scope};
use tributary_tests::activator::{ActivatorProcess, DealChange, STAGES, deal_history};
use tributary_tests::broker;
use tributary_tests::clickhouse::{PrivateClickHouse, TestDatabase};
use tributary_tests::enricher::{Topics, read_json};

/// Every number the dashboards build on, from every table the activator
/// feeds: if any of these moves when events are sent again, something
/// counted twice.
const NUMBERS: &[&str] = &[
    "SELECT count() AS events, uniqExact(event_id) AS ids FROM tributary.event_log FINAL",
    "SELECT count() AS deals, sum(amount) AS value, groupArray(stage) AS stages, groupArray(status) AS statuses FROM (SELECT id, toFloat64(amount) AS amount, stage_id AS stage, status FROM tributary.current_deals FINAL ORDER BY tenant, id)",
    "SELECT count() AS transitions, sum(toInt64(to_stage_id)) AS to_stages FROM tributary.deal_stage_transitions FINAL",
    "SELECT marketing_source AS channel, count() AS deals, round(sum(toFloat64(amount)), 2) AS value FROM tributary.current_deals FINAL WHERE status = 'won' GROUP BY channel ORDER BY channel",
    "SELECT count() AS contacts FROM (SELECT id FROM tributary_pii.contact_details GROUP BY tenant, source, account, id)",
];

/// Events the activator has finished loading. The ledger is written after
/// every record and event-log row of a batch, so a reader that waited on
/// another table could see a batch before all of it is in.
const LOADED: &str = "SELECT count() FROM tributary.load_ledger";

async fn numbers(db: &TestDatabase) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for sql in NUMBERS {
        all.push(db.query(sql).await);
    }
    all
}

async fn produce_events(brokers: &str, topic: &str, events: &[Value]) {
    let messages: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let key = format!(
                "{}:deal:{}",
                e["pipeline_tenant"].as_str().unwrap_or(""),
                e["deal_id"]
            );
            (key, serde_json::to_vec(e).expect("json"))
        })
        .collect();
    broker::produce(brokers, topic, &messages).await;
}

/// Waits until `sql`'s first row's first value equals `expected`.
async fn wait_for(db: &TestDatabase, sql: &str, expected: Value, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = db.query(sql).await;
        let got = rows
            .first()
            .and_then(|r| r.as_object())
            .and_then(|r| r.values().next().cloned());
        if got.as_ref() == Some(&expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: got {got:?}, want {expected}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_a_batch_again_and_shuffled_changes_no_number() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let db = TestDatabase::create("activator_replay").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("replay"),
        "",
    )
    .await;
    let events: Vec<Value> = deal_history("acme", 40, 1_741_000_000_000_000)
        .iter()
        .map(DealChange::to_json)
        .collect();
    let n = events.len();
    produce_events(&brokers, &topics.enriched, &events).await;
    wait_for(&db, LOADED, json!(n), || activator.service.log()).await;
    let first = numbers(&db).await;
    assert_eq!(first[0][0]["ids"], json!(n));
    // Won: deals 5, 15, 25, 35 once; 10, 20, 30, 40 won, reopened, won again.
    let won: i64 = first[3]
        .iter()
        .map(|r| r["deals"].as_i64().expect("deals"))
        .sum();
    assert_eq!(won, 8, "{:?}", first[3]);

    produce_events(&brokers, &topics.enriched, &events).await;
    let mut shuffled = events.clone();
    shuffled.reverse();
    shuffled.rotate_left(n / 3);
    produce_events(&brokers, &topics.enriched, &shuffled).await;
    // Every copy is read (dead letters none, duplicates counted) before comparing.
    let metrics = format!("{}/metrics", activator.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::get(&metrics)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let duplicates = text
            .lines()
            .find(|l| l.starts_with("tributary_activator_events_duplicate_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if duplicates >= 2 * n {
            assert_eq!(duplicates, 2 * n, "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {duplicates} duplicates seen\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(numbers(&db).await, first, "numbers moved after a replay");
    let raw = db
        .query("SELECT count() AS n FROM tributary.event_log")
        .await;
    assert_eq!(
        raw[0]["n"],
        json!(n),
        "no duplicate row was inserted at all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_stage_change_arriving_late_does_not_regress_the_deal() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let db = TestDatabase::create("activator_order").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("order"),
        "",
    )
    .await;
    let base = DealChange {
        tenant: "acme",
        deal_id: 77,
        at_micro: 1_741_000_000_000_000,
        stage: STAGES[1],
        previous_stage: Some((STAGES[0].0, STAGES[0].1)),
        status: "open",
        previous_status: None,
        value: 5000.0,
        source: "LinkedIn",
    };
    let newer = DealChange {
        at_micro: base.at_micro + 60_000_000,
        stage: STAGES[2],
        previous_stage: Some((STAGES[1].0, STAGES[1].1)),
        ..base.clone()
    };
    produce_events(&brokers, &topics.enriched, &[newer.to_json()]).await;
    wait_for(&db, LOADED, json!(1), || activator.service.log()).await;
    produce_events(&brokers, &topics.enriched, &[base.to_json()]).await;
    wait_for(&db, LOADED, json!(2), || activator.service.log()).await;
    let state = db
        .query("SELECT stage_id FROM tributary.current_deals FINAL WHERE id = '77'")
        .await;
    assert_eq!(state, vec![json!({"stage_id": "3"})]);
    let stage = db
        .query("SELECT name FROM tributary.stages FINAL WHERE id = '3'")
        .await;
    assert_eq!(stage, vec![json!({"name": "Proposal Made"})]);
    let transitions = db
        .query("SELECT from_stage_id, to_stage_id FROM tributary.deal_stage_transitions FINAL ORDER BY entered_at_micro")
        .await;
    assert_eq!(
        transitions,
        vec![
            json!({"from_stage_id": "1", "to_stage_id": "2"}),
            json!({"from_stage_id": "2", "to_stage_id": "3"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_dead_lettered_with_every_error_and_the_rest_load() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let db = TestDatabase::create("activator_invalid").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("invalid"),
        "",
    )
    .await;
    let history = deal_history("acme", 6, 1_741_000_000_000_000);
    let mut events: Vec<Value> = history.iter().map(DealChange::to_json).collect();
    let mut broken = events[1].clone();
    broken.as_object_mut().expect("object").remove("deal_id");
    broken["deal_value"] = json!("lots");
    broken["pipeline_event_id"] = json!("broken-1");
    let mut lead = events[2].clone();
    lead["event_object"] = json!("lead");
    lead["pipeline_event_id"] = json!("lead-1");
    // Valid for the template, but without the company every record's key needs.
    let mut no_account = events[3].clone();
    no_account["event_company_id"] = Value::Null;
    no_account["pipeline_event_id"] = json!("no-account-1");
    let mut messages: Vec<(String, Vec<u8>)> = vec![
        ("k".into(), serde_json::to_vec(&broken).expect("json")),
        ("k".into(), b"{not json".to_vec()),
        ("k".into(), serde_json::to_vec(&lead).expect("json")),
        ("k".into(), serde_json::to_vec(&no_account).expect("json")),
    ];
    for event in events.drain(..) {
        messages.push(("k".into(), serde_json::to_vec(&event).expect("json")));
    }
    broker::produce(&brokers, &topics.enriched, &messages).await;
    wait_for(&db, LOADED, json!(history.len()), || {
        activator.service.log()
    })
    .await;

    let letters = read_json(&brokers, &topics.dead_letter, 4, Duration::from_secs(30));
    assert_eq!(letters.len(), 4, "{}", activator.service.log());
    let mut by_reason: Vec<(String, Value)> = letters
        .into_iter()
        .map(|(_, l)| (l["reason"].as_str().unwrap_or_default().to_owned(), l))
        .collect();
    by_reason.sort_by(|a, b| a.0.cmp(&b.0));
    let reasons: Vec<&str> = by_reason.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "invalid_json",
            "no_template",
            "schema_validation",
            "unmappable"
        ]
    );
    let unmappable = &by_reason[3].1;
    assert_eq!(unmappable["event_id"], "no-account-1");
    assert_eq!(unmappable["errors"][0]["path"], "/event_company_id");
    assert!(
        unmappable["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("null")),
        "{unmappable:#}"
    );
    let invalid = &by_reason[2].1;
    assert_eq!(invalid["stage"], "activator");
    assert_eq!(invalid["event_id"], "broken-1");
    assert_eq!(invalid["tenant"], "acme");
    assert_eq!(invalid["original_topic"], json!(topics.enriched));
    assert_eq!(invalid["original_offset"], 0);
    let paths: BTreeSet<&str> = invalid["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(paths, BTreeSet::from(["", "/deal_value"]), "{invalid:#}");
    let messages: Vec<&str> = invalid["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("deal_id")),
        "{messages:?}"
    );
    let original = tributary_envelope::DeadLetter::original_bytes(
        &serde_json::from_value(invalid.clone()).expect("dead letter"),
    )
    .expect("base64");
    assert_eq!(
        original,
        serde_json::to_vec(&broken).expect("json"),
        "the original is kept byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_clickhouse_refuses_is_dead_lettered_alone_and_the_rest_of_its_batch_loads() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let db = TestDatabase::create("activator_refused").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("refused"),
        "",
    )
    .await;
    // A check an operator added on the server: ClickHouse refuses any insert
    // holding a deal titled "poison", and with it the rest of the block.
    db.execute(
        "CREATE MATERIALIZED VIEW tributary.refuse_poison ENGINE = Null AS \
         SELECT throwIf(title = 'poison') AS refused FROM tributary.deal_changes",
    )
    .await;
    let history = deal_history("acme", 30, 1_741_000_000_000_000);
    let mut events: Vec<Value> = history.iter().map(DealChange::to_json).collect();
    let poisoned = events.len() / 3;
    events[poisoned]["deal_title"] = json!("poison");
    let poison_id = events[poisoned]["pipeline_event_id"].clone();
    // Written at once, so the refused event is read in a batch with others.
    produce_events(&brokers, &topics.enriched, &events).await;
    wait_for(&db, LOADED, json!(events.len() - 1), || {
        activator.service.log()
    })
    .await;

    let letters = read_json(&brokers, &topics.dead_letter, 1, Duration::from_secs(30));
    assert_eq!(letters.len(), 1, "{}", activator.service.log());
    let letter = &letters[0].1;
    assert_eq!(letter["reason"], "clickhouse_refused");
    assert_eq!(letter["event_id"], poison_id);
    assert_eq!(letter["original_offset"], json!(poisoned));
    assert_eq!(letter["original_by_reference"], true);
    assert!(
        letter["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Code: 395") && m.contains("throwIf")),
        "ClickHouse's own words: {letter:#}"
    );
    let poison_log = format!(
        "SELECT count() AS n FROM tributary.event_log FINAL WHERE event_id = '{}'",
        poison_id.as_str().unwrap_or_default()
    );
    let loaded = db.query(&poison_log).await;
    assert_eq!(
        loaded,
        vec![json!({"n": 0})],
        "the refused event is not half loaded"
    );
    // Nothing stalls: a later event loads, and nothing is dead-lettered twice.
    let later = deal_history("acme", 31, 1_742_000_000_000_000)
        .last()
        .map(DealChange::to_json)
        .expect("an event");
    produce_events(&brokers, &topics.enriched, &[later]).await;
    wait_for(&db, LOADED, json!(events.len()), || activator.service.log()).await;
    let letters = read_json(&brokers, &topics.dead_letter, 2, Duration::from_secs(2));
    assert_eq!(letters.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_stopped_mid_stream_then_restarted_loses_and_doubles_nothing() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 3).await;
    let mut server = PrivateClickHouse::start().await;
    let db = TestDatabase::create_at(&server.url(), "activator_outage").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("outage"),
        "",
    )
    .await;
    let events: Vec<Value> = deal_history("acme", 60, 1_741_000_000_000_000)
        .iter()
        .map(DealChange::to_json)
        .collect();
    let (before, after) = events.split_at(events.len() / 2);
    produce_events(&brokers, &topics.enriched, before).await;
    wait_for(&db, LOADED, json!(before.len()), || activator.service.log()).await;

    server.kill();
    produce_events(&brokers, &topics.enriched, after).await;
    // Let the activator read them and fail to load a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        activator.service.log().contains("loading a batch failed"),
        "{}",
        activator.service.log()
    );
    server.restart().await;
    wait_for(
        &db,
        "SELECT count() FROM tributary.load_ledger FINAL",
        json!(events.len()),
        || activator.service.log(),
    )
    .await;
    let all = db
        .query("SELECT count() AS rows, uniqExact(event_id) AS ids FROM tributary.event_log FINAL")
        .await;
    assert_eq!(
        all,
        vec![json!({"rows": events.len(), "ids": events.len()})]
    );
    let ledger = db
        .query("SELECT count() AS n FROM tributary.load_ledger FINAL")
        .await;
    assert_eq!(ledger, vec![json!({"n": events.len()})]);
    let won = db
        .query("SELECT count() AS n FROM tributary.current_deals FINAL WHERE status = 'won'")
        .await;
    // Deals 5..60 step 5: 12 won; those divisible by 10 reopened and won again.
    assert_eq!(won, vec![json!({"n": 12})], "every won deal counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_deal_first_loaded_partial_moves_to_its_source_when_its_complete_copy_arrives() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let db = TestDatabase::create("activator_partial").await;
    let activator = ActivatorProcess::start(
        &brokers,
        &topics,
        &db.settings,
        &tributary_tests::unique("partial"),
        "",
    )
    .await;
    let added = DealChange {
        tenant: "acme",
        deal_id: 501,
        at_micro: 1_741_000_000_000_000,
        stage: STAGES[0],
        previous_stage: None,
        status: "open",
        previous_status: None,
        value: 2_000.0,
        source: "Webinar",
    };
    let won = DealChange {
        at_micro: added.at_micro + 60_000_000,
        status: "won",
        previous_status: Some("open"),
        ..added.clone()
    };
    // The win first arrives without what the deal-fields lookup gives (the
    // source's label), and the deal's creation too.
    let partial = |change: &DealChange| {
        let mut event = change.to_json();
        event["pipeline_enrichment_status"] = json!("partial");
        event["pipeline_enrichment_missing"] = json!(["deal_fields"]);
        event["marketing_source"] = Value::Null;
        event["marketing_campaign"] = Value::Null;
        event
    };
    produce_events(
        &brokers,
        &topics.enriched,
        &[partial(&added), partial(&won)],
    )
    .await;
    wait_for(&db, LOADED, json!(2), || activator.service.log()).await;

    let scope = Scope {
        from: 1_740_000_000,
        to: 1_742_000_000,
        tenant: "acme".into(),
        pipeline: None,
    };
    let panel = dashboard::sales_operations_panels()
        .expect("the dashboard parses")
        .into_iter()
        .find(|p| p.title == "Won deals by marketing source")
        .expect("the panel");
    let sql = dashboard::expand(&panel.sql, &scope).expect("expands");
    let by_source = |rows: Vec<Value>| -> Vec<(Value, Value)> {
        rows.into_iter()
            .map(|r| (r["channel"].clone(), r["won_deals"].clone()))
            .collect()
    };
    assert_eq!(
        by_source(db.query(&sql).await),
        [(json!("(none)"), json!(1))],
        "not yet known"
    );

    // The complete copy of the win only (the creation stays partial).
    produce_events(&brokers, &topics.enriched, &[won.to_json()]).await;
    wait_for(
        &db,
        "SELECT count() FROM tributary.load_ledger FINAL WHERE complete = 1",
        json!(1),
        || activator.service.log(),
    )
    .await;
    assert_eq!(
        by_source(db.query(&sql).await),
        [(json!("Webinar"), json!(1))],
        "the complete copy fills in the source; nothing is left under (none)"
    );
    // A later partial event does not blank it again.
    let edited = DealChange {
        at_micro: won.at_micro + 60_000_000,
        previous_status: None,
        previous_stage: Some((STAGES[0].0, STAGES[0].1)),
        ..won.clone()
    };
    produce_events(&brokers, &topics.enriched, &[partial(&edited)]).await;
    wait_for(&db, LOADED, json!(4), || activator.service.log()).await;
    assert_eq!(
        by_source(db.query(&sql).await),
        [(json!("Webinar"), json!(1))]
    );
}

#[tokio::test]
async fn the_default_row_checks_are_left_off_on_a_server_that_cannot_do_them() {
    let db = TestDatabase::create("activator_validation").await;
    // The default configuration, against the local 18.16 server.
    let settings = tributary_clickhouse::ClickHouseSettings {
        validation: true,
        ..db.settings.clone()
    };
    let clickhouse = tributary_activator::load::ClickHouse::connect(&settings)
        .await
        .expect("connects, migrates and loads without the row checks");
    assert!(!clickhouse.settings.validation);
    clickhouse.ping().await.expect("answers");
    let tables = db
        .query(&format!(
            "SELECT count() AS n FROM system.tables WHERE database = '{}'",
            settings.database
        ))
        .await;
    assert!(
        tables[0]["n"].as_u64().is_some_and(|n| n > 10),
        "{tables:?}"
    );
}
