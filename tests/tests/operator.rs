//! The operator tools as real processes against the broker (and ClickHouse
//! for `status`): `tributary replay`, `tributary dlq list|show|redrive`,
//! `tributary status`. Each test has topics, groups and a database of its own.
#![cfg(feature = "kafka-broker-tests")]

use std::collections::BTreeMap;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use tributary_envelope::{DeadLetter, DeadLetterError, ENVELOPE_VERSION, EventKeys, RawEvent};
use tributary_tests::broker::{self, Record};
use tributary_tests::enricher::{EnricherProcess, Topics};

/// The `tributary` command pointed at one test's topics (and database).
struct Tributary {
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

/// What one run printed and how it ended.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {}\n--- stdout\n{}--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

impl Tributary {
    fn new(brokers: &str, topics: &Topics) -> Self {
        Tributary {
            env: vec![
                ("TRIBUTARY_KAFKA__BROKERS".into(), brokers.into()),
                // The local broker decompresses every batch; the local configuration uses none.
                ("TRIBUTARY_KAFKA__COMPRESSION".into(), "none".into()),
                ("TRIBUTARY_TOPICS__RAW".into(), topics.raw.clone()),
                ("TRIBUTARY_TOPICS__ENRICHED".into(), topics.enriched.clone()),
                (
                    "TRIBUTARY_TOPICS__DEAD_LETTER".into(),
                    topics.dead_letter.clone(),
                ),
                ("TRIBUTARY_TOPICS__RETRY".into(), topics.retry.clone()),
            ],
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        // Only this test's configuration: no file, no inherited overrides.
        let mut command = tributary_tests::process::tributary_command();
        let started = std::time::Instant::now();
        let output: Output = command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("running tributary");
        eprintln!("tributary {args:?}: {:?}", started.elapsed());
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs and insists on success.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert!(run.ok, "tributary {args:?} failed\n{run:?}");
        run
    }

    /// Runs and insists on failure, with `wanted` in the error.
    fn fails(&self, args: &[&str], wanted: &str) -> Run {
        let run = self.run(args);
        assert!(!run.ok, "tributary {args:?} should have failed\n{run:?}");
        assert!(
            run.stderr.contains(wanted),
            "tributary {args:?}: error should mention {wanted:?}\n{run:?}"
        );
        run
    }
}

fn now_millis() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("millis")
}

/// A raw envelope of `tenant` about deal `id`, keyed as the collector keys it.
fn envelope(tenant: &str, id: usize) -> (String, Vec<u8>) {
    let event = RawEvent {
        envelope_version: ENVELOPE_VERSION,
        tenant: tenant.into(),
        source: "pipedrive".into(),
        received_at_micros: 1_741_096_800_000_000,
        event_id: uuid::Uuid::new_v4().to_string(),
        content_type: "application/json".into(),
        body: format!("{{\"deal\":{id}}}").into_bytes().into(),
        keys: Some(EventKeys {
            payload_version: "1".into(),
            object: "deal".into(),
            object_id: id.to_string(),
            action: "updated".into(),
            attempt: 1,
            occurred_at_micros: 1_741_096_800_000_000,
        }),
        ..RawEvent::default()
    };
    (event.partition_key(), event.encode_to_vec())
}

fn envelopes(tenant: &str, ids: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    ids.map(|id| envelope(tenant, id)).collect()
}

/// `(low, high)` of every partition of `topic`.
fn watermarks(brokers: &str, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let consumer: BaseConsumer = tributary_kafka::consumer_config(
        &broker::settings(brokers),
        &tributary_tests::unique("wm"),
    )
    .create()
    .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .map(|p| {
            let marks = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, marks)
        })
        .collect()
}

fn total(brokers: &str, topic: &str) -> usize {
    watermarks(brokers, topic)
        .values()
        .map(|(low, high)| usize::try_from(high - low).expect("count"))
        .sum()
}

/// Every message on `topic`, by partition in offset order.
fn read_all(brokers: &str, topic: &str) -> Vec<Record> {
    let expected = total(brokers, topic);
    let mut records = broker::read_topic(brokers, topic, expected, Duration::from_secs(30));
    assert_eq!(records.len(), expected, "read back all of {topic}");
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// A message's key and value bytes.
type KeyValue = (Vec<u8>, Vec<u8>);

fn key_value(record: &Record) -> KeyValue {
    (record.key.clone().unwrap_or_default(), record.value.clone())
}

/// What was added to `topic` since `before` (an earlier `read_all`), by partition in order.
fn added_since(brokers: &str, topic: &str, before: &[Record]) -> Vec<Record> {
    let known: std::collections::BTreeSet<(i32, i64)> =
        before.iter().map(|r| (r.partition, r.offset)).collect();
    read_all(brokers, topic)
        .into_iter()
        .filter(|r| !known.contains(&(r.partition, r.offset)))
        .collect()
}

/// Asserts `added` is exactly `selected`, copy for original: same key, same
/// bytes, same partition, same order within it.
fn assert_copies(added: &[Record], selected: &[&Record]) {
    let by_partition = |records: Vec<&Record>| {
        let mut map: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
        for r in records {
            map.entry(r.partition).or_default().push(key_value(r));
        }
        map
    };
    assert_eq!(
        added.len(),
        selected.len(),
        "replayed exactly the selected messages"
    );
    assert_eq!(
        by_partition(added.iter().collect()),
        by_partition(selected.to_vec()),
        "each copy has its original's key and bytes, on its partition, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_offsets_reproduces_exactly_the_range_and_never_chases_itself() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 2).await;
    let cli = Tributary::new(&brokers, &topics);
    let mut messages = envelopes("acme", 0..12);
    messages.extend(envelopes("globex", 12..24));
    broker::produce(&brokers, &topics.raw, &messages).await;
    let original = read_all(&brokers, &topics.raw);
    // The fuller partition, so the range has room.
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &original {
        *counts.entry(r.partition).or_default() += 1;
    }
    let (&partition, &count) = counts.iter().max_by_key(|(_, c)| **c).expect("a partition");
    assert!(count >= 6, "{counts:?}");
    let p = partition.to_string();
    let in_partition = |records: &[Record]| -> Vec<Record> {
        records
            .iter()
            .filter(|r| r.partition == partition)
            .cloned()
            .collect()
    };

    let run = cli.ok(&[
        "replay",
        "--topic",
        "raw",
        "--partition",
        &p,
        "--start-offset",
        "1",
        "--end-offset",
        "4",
    ]);
    assert!(run.stdout.contains("replayed 3 message(s)"), "{run:?}");
    let added = added_since(&brokers, &topics.raw, &original);
    let selected: Vec<&Record> = original
        .iter()
        .filter(|r| r.partition == partition && (1..4).contains(&r.offset))
        .collect();
    assert_copies(&added, &selected);

    // Without --end-offset: up to the end as it was at the start, the three
    // copies included, and not the copies it makes itself.
    let before = read_all(&brokers, &topics.raw);
    let end = in_partition(&before).len();
    let run = cli.ok(&[
        "replay",
        "--topic",
        &topics.raw,
        "--partition",
        &p,
        "--start-offset",
        "2",
    ]);
    let added = added_since(&brokers, &topics.raw, &before);
    let selected: Vec<&Record> = before
        .iter()
        .filter(|r| r.partition == partition && r.offset >= 2)
        .collect();
    assert_eq!(selected.len(), end - 2);
    assert_copies(&added, &selected);
    assert!(
        run.stdout
            .contains(&format!("replayed {} message(s)", end - 2)),
        "{run:?}"
    );

    // Mistakes are refused before anything is produced.
    let before = total(&brokers, &topics.raw);
    cli.fails(
        &[
            "replay",
            "--topic",
            "raw",
            "--partition",
            &p,
            "--start-offset",
            "5",
            "--end-offset",
            "2",
        ],
        "is after --end-offset",
    );
    cli.fails(
        &[
            "replay",
            "--topic",
            "raw",
            "--partition",
            &p,
            "--start-offset",
            "0",
            "--end-offset",
            "100000",
        ],
        "past the end",
    );
    cli.fails(
        &[
            "replay",
            "--topic",
            "raw",
            "--partition",
            &p,
            "--start-offset",
            "100000",
        ],
        "past the end",
    );
    cli.fails(
        &[
            "replay",
            "--topic",
            "raw",
            "--partition",
            "7",
            "--start-offset",
            "0",
        ],
        "no partition 7",
    );
    cli.fails(
        &["replay", "--topic", "no-such-topic-here", "--from", "0"],
        "no-such-topic-here does not exist",
    );
    cli.fails(
        &["replay", "--topic", "dead-letter", "--from", "0"],
        "dlq redrive",
    );
    cli.fails(&["replay", "--topic", "raw"], "--from");
    assert_eq!(total(&brokers, &topics.raw), before, "nothing produced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_time_selects_by_message_time_and_past_the_end_means_the_end() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 2).await;
    let cli = Tributary::new(&brokers, &topics);
    let gap = Duration::from_millis(300);
    broker::produce(&brokers, &topics.raw, &envelopes("acme", 0..5)).await;
    tokio::time::sleep(gap).await;
    let t1 = now_millis();
    tokio::time::sleep(gap).await;
    let batch_b = envelopes("acme", 5..11);
    broker::produce(&brokers, &topics.raw, &batch_b).await;
    tokio::time::sleep(gap).await;
    let t2 = now_millis();
    tokio::time::sleep(gap).await;
    let batch_c = envelopes("acme", 11..15);
    broker::produce(&brokers, &topics.raw, &batch_c).await;
    let original = read_all(&brokers, &topics.raw);
    assert_eq!(original.len(), 15);
    let t1_text = chrono::DateTime::from_timestamp_millis(t1)
        .expect("time")
        .to_rfc3339();
    let t2_text = t2.to_string();
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let in_batch = |batch: &[(String, Vec<u8>)]| -> Vec<&Record> {
        original
            .iter()
            .filter(|r| batch.iter().any(|(_, v)| *v == r.value))
            .collect()
    };

    // A time past every partition's end selects nothing (the local broker
    // answers offset 0 for it).
    let run = cli.ok(&["replay", "--topic", "raw", "--from", &future, "--dry-run"]);
    assert!(
        run.stdout
            .contains(&format!("0 message(s) of {} would be replayed", topics.raw)),
        "{run:?}"
    );
    let run = cli.ok(&["replay", "--topic", "raw", "--from", &future]);
    assert!(run.stdout.contains("replayed 0 message(s)"), "{run:?}");
    assert_eq!(total(&brokers, &topics.raw), 15, "nothing produced");

    // --to past the end: up to the end.
    cli.ok(&[
        "replay", "--topic", "raw", "--from", &t2_text, "--to", &future,
    ]);
    let added = added_since(&brokers, &topics.raw, &original);
    assert_copies(&added, &in_batch(&batch_c));

    // A window in the middle: exactly the batch written inside it.
    let before = read_all(&brokers, &topics.raw);
    let run = cli.ok(&[
        "replay",
        "--topic",
        "raw",
        "--from",
        &t1_text,
        "--to",
        &t2_text,
        "--dry-run",
    ]);
    assert!(
        run.stdout
            .contains(&format!("6 message(s) of {} would be replayed", topics.raw)),
        "{run:?}"
    );
    assert_eq!(
        total(&brokers, &topics.raw),
        before.len(),
        "a dry run produces nothing"
    );
    cli.ok(&[
        "replay", "--topic", "raw", "--from", &t1_text, "--to", &t2_text,
    ]);
    let added = added_since(&brokers, &topics.raw, &before);
    assert_copies(&added, &in_batch(&batch_b));

    cli.fails(
        &["replay", "--topic", "raw", "--from", "yesterday"],
        "--from \"yesterday\"",
    );
    cli.fails(
        &[
            "replay", "--topic", "raw", "--from", &t2_text, "--to", &t1_text,
        ],
        "is after --to",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_filters_by_the_tenant_in_the_content_not_the_key() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 2).await;
    let cli = Tributary::new(&brokers, &topics);

    // Raw: the tenant is the envelope's.
    let mut raw = envelopes("acme", 0..5);
    raw.extend(envelopes("globex", 5..11));
    let (_, liar) = envelope("globex", 11);
    raw.push(("acme:pipedrive:deal:11".into(), liar));
    raw.push((
        "acme:pipedrive:deal:12".into(),
        b"\x08\x99not an envelope".to_vec(),
    ));
    broker::produce(&brokers, &topics.raw, &raw).await;
    let original = read_all(&brokers, &topics.raw);
    let acme: Vec<&Record> = original
        .iter()
        .filter(|r| RawEvent::decode_from(&r.value).is_ok_and(|e| e.tenant == "acme"))
        .collect();
    assert_eq!(acme.len(), 5);

    let run = cli.ok(&[
        "replay",
        "--topic",
        "raw",
        "--from",
        "0",
        "--tenant",
        "acme",
        "--dry-run",
    ]);
    assert!(
        run.stdout.contains("dry run: nothing is produced"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "5 message(s) of {} would be replayed (13 read, 8 not of tenant acme skipped)",
            topics.raw
        )),
        "{run:?}"
    );
    let per_partition: usize = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("partition "))
        .map(|l| {
            l.rsplit_once(", ")
                .and_then(|(_, n)| n.trim_end_matches(" to replay").parse::<usize>().ok())
                .expect("count per partition")
        })
        .sum();
    assert_eq!(per_partition, 5, "{run:?}");
    assert_eq!(
        total(&brokers, &topics.raw),
        original.len(),
        "a dry run produces nothing"
    );

    cli.ok(&[
        "replay", "--topic", "raw", "--from", "0", "--tenant", "acme",
    ]);
    assert_copies(&added_since(&brokers, &topics.raw, &original), &acme);

    // Enriched: the tenant is `pipeline_tenant`.
    let enriched: Vec<(String, Vec<u8>)> = [
        ("acme", "acme"),
        ("acme", "acme"),
        ("globex", "globex"),
        ("globex", "globex"),
        ("globex", "globex"),
        // Keyed as acme, but globex's event.
        ("acme", "globex"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (key_tenant, tenant))| {
        (
            format!("{key_tenant}:pipedrive:deal:{i}"),
            serde_json::to_vec(&json!({"pipeline_tenant": tenant, "deal_id": i})).expect("json"),
        )
    })
    .collect();
    broker::produce(&brokers, &topics.enriched, &enriched).await;
    let original = read_all(&brokers, &topics.enriched);
    let globex: Vec<&Record> = original
        .iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.value).expect("json")["pipeline_tenant"] == "globex"
        })
        .collect();
    assert_eq!(globex.len(), 4);
    cli.ok(&[
        "replay", "--topic", "enriched", "--from", "0", "--tenant", "globex",
    ]);
    assert_copies(&added_since(&brokers, &topics.enriched, &original), &globex);
}

fn dead_letter(
    stage: &str,
    reason: &str,
    tenant: Option<&str>,
    original_topic: &str,
    original: &[u8],
) -> DeadLetter {
    DeadLetter {
        stage: stage.into(),
        reason: reason.into(),
        errors: vec![
            DeadLetterError::new("", format!("{reason} happened")),
            DeadLetterError::new("/x", "and more"),
        ],
        event_id: tenant.map(|_| uuid::Uuid::new_v4().to_string()),
        tenant: tenant.map(str::to_owned),
        source: tenant.map(|_| "pipedrive".to_owned()),
        original_topic: original_topic.into(),
        original_partition: 0,
        original_offset: 7,
        failed_at: "2025-03-04T14:00:00.000001Z".into(),
        original: DeadLetter::encode_original(original),
        original_by_reference: false,
    }
}

/// `list` lines: `partition@offset failed_at stage reason tenant event_id message...`.
fn listed(run: &Run) -> Vec<Vec<String>> {
    run.stdout
        .lines()
        .filter(|l| {
            l.split_once('@')
                .is_some_and(|(p, _)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// `list` counts: `(stage, reason) -> count`.
fn counted(run: &Run) -> BTreeMap<(String, String), u64> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                [stage, reason, count] => {
                    Some(((stage.to_string(), reason.to_string()), count.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_lists_filters_shows_and_redrives_the_original_bytes_with_the_original_key() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 2).await;
    let cli = Tributary::new(&brokers, &topics);
    let (_, unreadable_body) = {
        let mut event = RawEvent::decode_from(&envelope("acme", 2).1).expect("envelope");
        event.body = b"{not json".to_vec().into();
        (event.partition_key(), event.encode_to_vec())
    };
    let enriched_3 = br#"{"pipeline_tenant":"acme","deal_id":3}"#.to_vec();
    let enriched_4 = br#"{"pipeline_tenant":"globex","lead_id":4}"#.to_vec();
    let enriched_5 = br#"{"pipeline_tenant":"globex","deal_id":"five"}"#.to_vec();
    let garbage = b"\x08\x99not an envelope".to_vec();
    let letters: Vec<(String, DeadLetter)> = vec![
        (
            "acme:pipedrive:deal:1".into(),
            dead_letter(
                "enricher",
                "malformed_envelope",
                None,
                &topics.raw,
                &garbage,
            ),
        ),
        (
            "acme:pipedrive:deal:2".into(),
            dead_letter(
                "enricher",
                "unreadable_body",
                Some("acme"),
                &topics.raw,
                &unreadable_body,
            ),
        ),
        (
            "acme:pipedrive:deal:3".into(),
            dead_letter(
                "activator",
                "schema_validation",
                Some("acme"),
                &topics.enriched,
                &enriched_3,
            ),
        ),
        (
            "globex:pipedrive:lead:4".into(),
            dead_letter(
                "activator",
                "no_template",
                Some("globex"),
                &topics.enriched,
                &enriched_4,
            ),
        ),
        (
            "globex:pipedrive:deal:5".into(),
            dead_letter(
                "activator",
                "schema_validation",
                Some("globex"),
                &topics.enriched,
                &enriched_5,
            ),
        ),
    ];
    let messages: Vec<(String, Vec<u8>)> = letters
        .iter()
        .map(|(key, letter)| (key.clone(), letter.to_json()))
        .collect();
    broker::produce(&brokers, &topics.dead_letter, &messages).await;
    let on_topic = read_all(&brokers, &topics.dead_letter);
    let position_of = |key: &str| {
        let r = on_topic
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_bytes()))
            .expect("record on the topic");
        format!("{}@{}", r.partition, r.offset)
    };

    // list: one line per record, then counts by stage and reason.
    let run = cli.ok(&["dlq", "list"]);
    let lines = listed(&run);
    assert_eq!(lines.len(), 5, "{run:?}");
    let line_of = |key: &str| {
        lines
            .iter()
            .find(|l| l[0] == position_of(key))
            .unwrap_or_else(|| panic!("{key} listed\n{run:?}"))
            .clone()
    };
    let first = line_of("acme:pipedrive:deal:1");
    assert_eq!(
        first[1..6],
        [
            "2025-03-04T14:00:00.000001Z",
            "enricher",
            "malformed_envelope",
            "-",
            "-"
        ]
    );
    assert_eq!(
        first[6..].join(" "),
        "malformed_envelope happened (+1 more)"
    );
    let third = line_of("acme:pipedrive:deal:3");
    assert_eq!(third[2..5], ["activator", "schema_validation", "acme"]);
    assert_eq!(third[5], letters[2].1.event_id.clone().expect("event id"));
    assert!(
        run.stdout
            .contains(&format!("5 record(s) on {}", topics.dead_letter))
    );
    let expected_counts = BTreeMap::from([
        (("activator".to_string(), "no_template".to_string()), 1),
        (("activator".into(), "schema_validation".into()), 2),
        (("enricher".into(), "malformed_envelope".into()), 1),
        (("enricher".into(), "unreadable_body".into()), 1),
    ]);
    assert_eq!(counted(&run), expected_counts, "{run:?}");

    let positions = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["dlq", "list"];
        all.extend_from_slice(args);
        let mut found: Vec<String> = listed(&cli.ok(&all))
            .into_iter()
            .map(|l| l[0].clone())
            .collect();
        found.sort();
        found
    };
    let of = |keys: &[&str]| -> Vec<String> {
        let mut found: Vec<String> = keys.iter().map(|k| position_of(k)).collect();
        found.sort();
        found
    };
    assert_eq!(
        positions(&["--stage", "activator"]),
        of(&[
            "acme:pipedrive:deal:3",
            "globex:pipedrive:lead:4",
            "globex:pipedrive:deal:5"
        ])
    );
    assert_eq!(
        positions(&["--tenant", "acme"]),
        of(&["acme:pipedrive:deal:2", "acme:pipedrive:deal:3"])
    );
    assert_eq!(
        positions(&["--reason", "schema_validation", "--tenant", "globex"]),
        of(&["globex:pipedrive:deal:5"])
    );
    assert_eq!(
        positions(&["--stage", "enricher", "--reason", "no_template"]),
        of(&[])
    );
    let limited = cli.ok(&["dlq", "list", "--limit", "2"]);
    assert_eq!(listed(&limited).len(), 2);
    assert!(
        limited.stdout.contains("5 record(s) on") && limited.stdout.contains("(2 listed)"),
        "{limited:?}"
    );
    assert_eq!(
        counted(&limited),
        expected_counts,
        "counts cover every matching record"
    );

    // show: the original decoded, an envelope's fields and body as text, an event as JSON.
    let shown: Value = serde_json::from_str(
        &cli.ok(&["dlq", "show", &position_of("acme:pipedrive:deal:2")])
            .stdout,
    )
    .expect("show prints JSON");
    assert_eq!(shown["key"], "acme:pipedrive:deal:2");
    assert_eq!(shown["reason"], "unreadable_body");
    assert_eq!(shown["original"]["tenant"], "acme");
    assert_eq!(shown["original"]["source"], "pipedrive");
    assert_eq!(shown["original"]["keys"]["object_id"], "2");
    assert_eq!(shown["original"]["body"], "{not json");
    let shown: Value = serde_json::from_str(
        &cli.ok(&["dlq", "show", &position_of("acme:pipedrive:deal:3")])
            .stdout,
    )
    .expect("show prints JSON");
    assert_eq!(
        shown["original"],
        json!({"pipeline_tenant": "acme", "deal_id": 3})
    );
    assert_eq!(shown["errors"][1]["path"], "/x");
    let shown: Value = serde_json::from_str(
        &cli.ok(&["dlq", "show", &position_of("acme:pipedrive:deal:1")])
            .stdout,
    )
    .expect("show prints JSON");
    assert!(shown["original"]["undecodable"].is_string(), "{shown}");
    cli.fails(&["dlq", "show", "0@100000"], "no message at 0@100000");
    cli.fails(&["dlq", "show", "zero"], "<partition>@<offset>");

    // redrive: the original bytes back where they failed, with their key.
    let run = cli.ok(&[
        "dlq",
        "redrive",
        "--stage",
        "activator",
        "--tenant",
        "acme",
        "--dry-run",
    ]);
    assert!(
        run.stdout.contains("1 record(s) would be redriven"),
        "{run:?}"
    );
    assert_eq!(
        total(&brokers, &topics.enriched),
        0,
        "a dry run sends nothing"
    );
    let run = cli.ok(&["dlq", "redrive", "--stage", "activator", "--tenant", "acme"]);
    assert!(run.stdout.contains("redrove 1 of 1 record(s)"), "{run:?}");
    let enriched = read_all(&brokers, &topics.enriched);
    assert_eq!(enriched.len(), 1);
    assert_eq!(
        key_value(&enriched[0]),
        (b"acme:pipedrive:deal:3".to_vec(), enriched_3.clone())
    );

    cli.ok(&["dlq", "redrive", "--stage", "enricher"]);
    let mut raw: Vec<KeyValue> = read_all(&brokers, &topics.raw)
        .iter()
        .map(key_value)
        .collect();
    raw.sort();
    assert_eq!(
        raw,
        vec![
            (b"acme:pipedrive:deal:1".to_vec(), garbage),
            (b"acme:pipedrive:deal:2".to_vec(), unreadable_body),
        ]
    );
    assert_eq!(
        total(&brokers, &topics.enriched),
        1,
        "only the selected stage's records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrichers_dead_letters_are_redriven_with_the_failed_messages_key() {
    let brokers = broker::shared_brokers();
    let topics = Topics::create(&brokers, 1).await;
    let cli = Tributary::new(&brokers, &topics);
    let group = tributary_tests::unique("operator-dlq");
    let mut enricher = EnricherProcess::start(&brokers, &topics, &group, "").await;
    let garbage = b"\x08\x99not an envelope".to_vec();
    let (_, foreign) = {
        let mut event = RawEvent::decode_from(&envelope("acme", 9).1).expect("envelope");
        event.source = "legacycrm".into();
        (event.partition_key(), event.encode_to_vec())
    };
    broker::produce(
        &brokers,
        &topics.raw,
        &[
            ("acme:pipedrive:deal:1".into(), garbage.clone()),
            ("acme:legacycrm:deal:9".into(), foreign.clone()),
        ],
    )
    .await;
    let letters = broker::read_topic(&brokers, &topics.dead_letter, 2, Duration::from_secs(30));
    assert_eq!(letters.len(), 2, "{}", enricher.service.log());
    enricher.service.terminate(Duration::from_secs(10));

    let run = cli.ok(&["dlq", "list", "--stage", "enricher"]);
    let lines = listed(&run);
    assert_eq!(lines.len(), 2, "{run:?}");
    let reasons: Vec<&str> = lines.iter().map(|l| l[3].as_str()).collect();
    assert!(
        reasons.contains(&"malformed_envelope") && reasons.contains(&"unknown_source"),
        "{run:?}"
    );
    let run = cli.ok(&["dlq", "list", "--tenant", "acme"]);
    assert_eq!(
        listed(&run).len(),
        1,
        "the malformed envelope has no tenant\n{run:?}"
    );

    let before = read_all(&brokers, &topics.raw);
    cli.ok(&["dlq", "redrive", "--reason", "malformed_envelope"]);
    let added = added_since(&brokers, &topics.raw, &before);
    assert_eq!(added.len(), 1);
    assert_eq!(
        key_value(&added[0]),
        (b"acme:pipedrive:deal:1".to_vec(), garbage)
    );
    cli.ok(&["dlq", "redrive", "--reason", "unknown_source"]);
    let added = added_since(&brokers, &topics.raw, &before);
    assert_eq!(added.len(), 2);
    assert_eq!(
        key_value(&added[1]),
        (b"acme:legacycrm:deal:9".to_vec(), foreign)
    );
}

/// `status` reads ClickHouse too.
#[cfg(feature = "clickhouse-tests")]
mod status {
    use rdkafka::consumer::CommitMode;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

    use super::*;

    impl Tributary {
        pub(super) fn with(mut self, key: &str, value: &str) -> Self {
            self.env.push((key.into(), value.into()));
            self
        }
    }

    /// Writes `count` messages to one partition of `topic`.
    async fn produce_to_partition(brokers: &str, topic: &str, partition: i32, count: usize) {
        let producer: rdkafka::producer::FutureProducer =
            tributary_kafka::producer_config(&broker::settings(brokers))
                .set("compression.type", "none")
                .create()
                .expect("producer");
        for i in 0..count {
            let key = format!("acme:pipedrive:deal:{i}");
            let payload = format!("{{\"n\":{i}}}");
            producer
                .send(
                    rdkafka::producer::FutureRecord::to(topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("stored");
        }
    }

    /// Commits `offsets` (partition, offset) for `group` on `topic`, as a stage would.
    fn commit(brokers: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
        let consumer: BaseConsumer =
            tributary_kafka::consumer_config(&broker::settings(brokers), group)
                .create()
                .expect("consumer");
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .expect("offset");
        }
        consumer.commit(&list, CommitMode::Sync).expect("commit");
        assert_eq!(
            broker::committed_offsets(brokers, group, topic),
            offsets.iter().copied().collect::<BTreeMap<_, _>>()
        );
    }

    /// The rows of one stage's table in `status`: partition -> (committed, end, lag), and the totals.
    fn lag_table(stdout: &str, stage: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
        let mut lines = stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{stage}: group ")))
            .skip(2);
        let mut rows = BTreeMap::new();
        for line in lines.by_ref() {
            let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            if fields[0] == "total" {
                return (rows, fields[1..].to_vec());
            }
            rows.insert(fields[0].clone(), fields[1..].to_vec());
        }
        panic!("no {stage} table in\n{stdout}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_reports_exact_lag_dead_letters_last_and_partial_events_per_tenant() {
        let brokers = broker::shared_brokers();
        let topics = Topics::create(&brokers, 2).await;
        let enricher_group = tributary_tests::unique("operator-enricher");
        let activator_group = tributary_tests::unique("operator-activator");
        produce_to_partition(&brokers, &topics.raw, 0, 5).await;
        produce_to_partition(&brokers, &topics.raw, 1, 3).await;
        produce_to_partition(&brokers, &topics.enriched, 0, 4).await;
        produce_to_partition(&brokers, &topics.enriched, 1, 2).await;
        // Partial events waiting to be enriched again.
        produce_to_partition(&brokers, &topics.retry, 1, 4).await;
        commit(&brokers, &enricher_group, &topics.raw, &[(0, 2)]);
        commit(
            &brokers,
            &format!("{enricher_group}.retry"),
            &topics.retry,
            &[(1, 1)],
        );
        commit(
            &brokers,
            &activator_group,
            &topics.enriched,
            &[(0, 4), (1, 1)],
        );
        let letters: Vec<(String, Vec<u8>)> = [
            ("enricher", "malformed_envelope"),
            ("enricher", "malformed_envelope"),
            ("activator", "invalid_json"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (stage, reason))| {
            (
                format!("acme:pipedrive:deal:{i}"),
                dead_letter(stage, reason, Some("acme"), &topics.raw, b"x").to_json(),
            )
        })
        .collect();
        broker::produce(&brokers, &topics.dead_letter, &letters).await;

        let database = tributary_tests::clickhouse::TestDatabase::create("operator_status").await;
        database
        .execute(
            "INSERT INTO tributary.event_log (event_id, tenant, source, enrichment_status, \
             received_at_micro, enriched_at_micro, action, object, version_micro) VALUES \
             ('e1', 'acme', 'pipedrive', 'complete', 1741096801000000, 1741096801000100, 'updated', 'contact', 1741096800000000), \
             ('e2', 'acme', 'pipedrive', 'complete', 1741096901500000, 1741096901500100, 'updated', 'contact', 1741096900123456), \
             ('e3', 'globex', 'pipedrive', 'partial', 1741000000000000, 1741000000000100, 'added', 'contact', 1740999999000001)",
        )
        .await;
        // Partial events: globex's two miss lookups; acme's one was
        // completed by a later enrichment and no longer counts.
        database
        .execute(
            "INSERT INTO tributary.event_log (event_id, tenant, source, enrichment_status, \
             enrichment_missing, received_at_micro, enriched_at_micro) VALUES \
             ('p1', 'globex', 'pipedrive', 'partial', ['person','stage'], 1741000100000000, 1741000100000100), \
             ('p2', 'globex', 'pipedrive', 'partial', ['person'], 1741000200000000, 1741000200000100), \
             ('p3', 'acme', 'pipedrive', 'partial', ['organization'], 1741000300000000, 1741000300000100), \
             ('p3', 'acme', 'pipedrive', 'complete', [], 1741000300000000, 1741000400000100)",
        )
        .await;

        let cli = Tributary::new(&brokers, &topics)
            .with("TRIBUTARY_ENRICHER__GROUP_ID", &enricher_group)
            .with("TRIBUTARY_ACTIVATOR__GROUP_ID", &activator_group)
            .with("TRIBUTARY_CLICKHOUSE__URL", &database.settings.url)
            .with("TRIBUTARY_CLICKHOUSE__DATABASE", database.name())
            .with("TRIBUTARY_CLICKHOUSE__VALIDATION", "false");
        let run = cli.ok(&["status"]);
        let stdout = &run.stdout;
        assert!(
            stdout.contains(&format!(
                "enricher: group {enricher_group} on {}",
                topics.raw
            )),
            "{run:?}"
        );
        let (rows, totals) = lag_table(stdout, "enricher");
        assert_eq!(rows["0"], ["2", "5", "3"], "{run:?}");
        // No commit: everything the partition holds is still to be read.
        assert_eq!(rows["1"], ["-", "3", "3"], "{run:?}");
        assert_eq!(totals, ["8", "6"], "{run:?}");
        let (rows, totals) = lag_table(stdout, "re-enrichment");
        assert!(
            stdout.contains(&format!(
                "re-enrichment: group {enricher_group}.retry on {}",
                topics.retry
            )),
            "{run:?}"
        );
        assert_eq!(rows["0"], ["-", "0", "0"], "{run:?}");
        assert_eq!(rows["1"], ["1", "4", "3"], "{run:?}");
        assert_eq!(totals, ["4", "3"], "{run:?}");
        let (rows, totals) = lag_table(stdout, "activator");
        assert_eq!(rows["0"], ["4", "4", "0"], "{run:?}");
        assert_eq!(rows["1"], ["1", "2", "1"], "{run:?}");
        assert_eq!(totals, ["6", "1"], "{run:?}");
        assert!(
            stdout.contains(&format!("dead letters on {}: 3", topics.dead_letter)),
            "{run:?}"
        );
        let counts = counted(&run);
        assert_eq!(counts[&("enricher".into(), "malformed_envelope".into())], 2);
        assert_eq!(counts[&("activator".into(), "invalid_json".into())], 1);
        let tenant_line = |tenant: &str| -> Vec<String> {
            stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(tenant))
                .unwrap_or_else(|| panic!("{tenant} in\n{stdout}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            tenant_line("acme"),
            [
                "acme",
                "3",
                "2025-03-04T14:01:40.123456Z",
                "2025-03-04T14:01:41.500000Z"
            ]
        );
        assert_eq!(
            tenant_line("globex"),
            [
                "globex",
                "3",
                "2025-03-03T11:06:39.000001Z",
                "2025-03-03T11:10:00.000000Z"
            ]
        );

        let partial: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with("partial events per tenant"))
            .skip(2)
            .collect();
        assert_eq!(
            partial,
            [format!(
                "  {:<6}  {:>10}  {:<27}  person,stage",
                "globex", 3, "2025-03-03T11:06:40.000000Z"
            )],
            "{run:?}"
        );

        // ClickHouse away: the Kafka part still prints, and says so.
        let away = Tributary::new(&brokers, &topics)
            .with("TRIBUTARY_ENRICHER__GROUP_ID", &enricher_group)
            .with("TRIBUTARY_ACTIVATOR__GROUP_ID", &activator_group)
            .with(
                "TRIBUTARY_CLICKHOUSE__URL",
                &format!("http://127.0.0.1:{}", tributary_tests::free_port()),
            )
            .with("TRIBUTARY_CLICKHOUSE__VALIDATION", "false");
        let run = away.fails(&["status"], "ClickHouse could not be reached");
        assert!(
            run.stdout.contains("ClickHouse could not be reached"),
            "{run:?}"
        );
        assert_eq!(lag_table(&run.stdout, "enricher").1, ["8", "6"], "{run:?}");
        assert_eq!(lag_table(&run.stdout, "activator").1, ["6", "1"], "{run:?}");
        assert!(
            run.stdout
                .contains(&format!("dead letters on {}: 3", topics.dead_letter))
        );
    }
}

/// `tributary rates`: an operator's rates win over the configured ones, and
/// the dashboards convert with them.
#[cfg(feature = "clickhouse-tests")]
mod rates {
    use tributary_clickhouse::dashboard::{self, Scope};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operator_rates_win_over_configured_ones_and_the_dashboards_use_them() {
        let brokers = broker::shared_brokers();
        let topics = Topics::create(&brokers, 1).await;
        let database = tributary_tests::clickhouse::TestDatabase::create("operator_rates").await;
        // One open deal of 1,000 USD; the configuration says 0.9 EUR a dollar.
        database
            .execute(
                "INSERT INTO tributary.deal_changes (tenant, source, account, id, version, received, known, \
                 deleted, merged_into, status, pipeline_id, stage_id, amount, currency) VALUES \
                 ('acme', 'pipedrive', '1', '7', 1, 1, ['deleted', 'merged_into', 'status', 'pipeline_id', 'stage_id', 'amount', 'currency'], \
                 0, NULL, 'open', '1', '1', 1000, 'USD')",
            )
            .await;
        // Its current row, as the activator would keep it.
        database
            .execute("INSERT INTO tributary.current_deals SELECT * FROM tributary.deals_resolved")
            .await;
        database
            .execute(
                "INSERT INTO tributary.currency_rates VALUES \
                 ('acme', 'EUR', 'configuration', 'EUR', 1, '2025-01-01 00:00:00'), \
                 ('acme', 'USD', 'configuration', 'EUR', 0.9, '2025-01-01 00:00:00')",
            )
            .await;
        // No `validation = false`: the command finds out what the server
        // can do (the local 18.16 cannot check row types) and says so.
        let cli = Tributary::new(&brokers, &topics)
            .with("TRIBUTARY_CLICKHOUSE__URL", &database.settings.url)
            .with("TRIBUTARY_CLICKHOUSE__DATABASE", database.name());
        let kpis = || async {
            let panel = dashboard::sales_operations_panels()
                .expect("panels")
                .into_iter()
                .find(|p| p.title == "Pipeline KPIs")
                .expect("the KPI panel");
            let scope = Scope {
                from: 0,
                to: 2_000_000_000,
                tenant: "acme".into(),
                pipeline: None,
            };
            database
                .query(&dashboard::expand(&panel.sql, &scope).expect("expands"))
                .await[0]["open_pipeline_value"]
                .as_f64()
                .expect("a value")
        };
        assert_eq!(kpis().await, 900.0, "the configured rate");

        cli.fails(
            &[
                "rates", "set", "--tenant", "acme", "--home", "GBP", "USD=0.8",
            ],
            "EUR",
        );
        cli.fails(
            &[
                "rates", "set", "--tenant", "acme", "--home", "EUR", "usd=0.8",
            ],
            "ISO 4217",
        );
        cli.ok(&[
            "rates", "set", "--tenant", "acme", "--home", "EUR", "USD=0.75",
        ]);
        assert_eq!(kpis().await, 750.0, "the operator's rate wins");
        let list = cli.ok(&["rates", "list", "--tenant", "acme"]);
        let usd: Vec<&str> = list
            .stdout
            .lines()
            .filter(|l| l.starts_with("USD"))
            .collect();
        assert_eq!(usd.len(), 2, "{list:?}");
        assert!(
            usd.iter()
                .any(|l| l.contains("0.75") && l.contains("operator")),
            "{list:?}"
        );

        // A zero takes the operator's rate back: the configured one applies again.
        cli.ok(&["rates", "set", "--tenant", "acme", "--home", "EUR", "USD=0"]);
        assert_eq!(kpis().await, 900.0);
    }
}
