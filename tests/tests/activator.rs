//! The activator as a real process between the broker and ClickHouse.
#![cfg(all(feature = "kafka-broker-tests", feature = "clickhouse-tests"))]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_tests::activator::{ActivatorProcess, DealChange, STAGES, deal_history};
use tributary_tests::broker;
use tributary_tests::clickhouse::{PrivateClickHouse, TestDatabase};
use tributary_tests::enricher::{Topics, read_json};

/// Every number the dashboards build on, from every table the activator
/// feeds: if any of these moves when events are sent again, something
/// counted twice.
const NUMBERS: &[&str] = &[
    "SELECT count() AS events, uniqExact(pipeline_event_id) AS ids FROM tributary.events FINAL",
    "SELECT count() AS deals, sum(deal_value) AS value, groupArray(deal_stage_id) AS stages, groupArray(deal_status) AS statuses FROM (SELECT * FROM tributary.deal_state FINAL ORDER BY pipeline_tenant, deal_id)",
    "SELECT count() AS transitions, sum(to_stage_id) AS to_stages FROM tributary.stage_transitions FINAL",
    "SELECT marketing_source, arraySum(t -> t.2, groupUniqArrayMerge(transitions)) AS deals, round(arraySum(t -> t.2 * t.3, groupUniqArrayMerge(transitions)), 2) AS value FROM tributary.won_by_source GROUP BY marketing_source ORDER BY marketing_source",
    "SELECT count() AS contacts FROM tributary_pii.contacts FINAL",
];

/// Events the activator has finished loading. The ledger is written after the
/// `events` insert and every view it feeds, so a reader that waited on the
/// `events` table alone could see a batch before its views.
const LOADED: &str = "SELECT count() FROM tributary.event_ledger";

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
    let raw = db.query("SELECT count() AS n FROM tributary.events").await;
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
        .query(
            "SELECT deal_stage_id, deal_stage FROM tributary.deal_state FINAL WHERE deal_id = 77",
        )
        .await;
    assert_eq!(
        state,
        vec![json!({"deal_stage_id": 3, "deal_stage": "Proposal Made"})]
    );
    let transitions = db
        .query("SELECT from_stage_id, to_stage_id FROM tributary.stage_transitions FINAL ORDER BY changed_at_micro")
        .await;
    assert_eq!(
        transitions,
        vec![
            json!({"from_stage_id": 1, "to_stage_id": 2}),
            json!({"from_stage_id": 2, "to_stage_id": 3})
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
    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    messages.push(("k".into(), serde_json::to_vec(&broken).expect("json")));
    messages.push(("k".into(), b"{not json".to_vec()));
    messages.push(("k".into(), serde_json::to_vec(&lead).expect("json")));
    for event in events.drain(..) {
        messages.push(("k".into(), serde_json::to_vec(&event).expect("json")));
    }
    broker::produce(&brokers, &topics.enriched, &messages).await;
    wait_for(&db, LOADED, json!(history.len()), || {
        activator.service.log()
    })
    .await;

    let letters = read_json(&brokers, &topics.dead_letter, 3, Duration::from_secs(30));
    assert_eq!(letters.len(), 3, "{}", activator.service.log());
    let mut by_reason: Vec<(String, Value)> = letters
        .into_iter()
        .map(|(_, l)| (l["reason"].as_str().unwrap_or_default().to_owned(), l))
        .collect();
    by_reason.sort_by(|a, b| a.0.cmp(&b.0));
    let reasons: Vec<&str> = by_reason.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        ["invalid_json", "no_template", "schema_validation"]
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
        "SELECT count() FROM tributary.event_ledger FINAL",
        json!(events.len()),
        || activator.service.log(),
    )
    .await;
    let all = db
        .query("SELECT count() AS rows, uniqExact(pipeline_event_id) AS ids FROM tributary.events FINAL")
        .await;
    assert_eq!(
        all,
        vec![json!({"rows": events.len(), "ids": events.len()})]
    );
    let ledger = db
        .query("SELECT count() AS n FROM tributary.event_ledger FINAL")
        .await;
    assert_eq!(ledger, vec![json!({"n": events.len()})]);
    let won = db
        .query("SELECT arraySum(t -> t.2, groupUniqArrayMerge(transitions)) AS n FROM tributary.won_by_source")
        .await;
    // Deals 5..60 step 5: 12 won; those divisible by 10 reopened and won again.
    assert_eq!(won, vec![json!({"n": 12})], "every won deal counted once");
}
